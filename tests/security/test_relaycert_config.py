"""The relay certificate settings refuse what they cannot use, naming the key and the value.

``[smtp] relay_sender_binding``, ``[certificates]`` policy OIDs and the ``[relay_peers]``
table are read from a real ``mssante.toml``; ``mssante check-config`` exits 2 on a bad one.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from config import ConfigError, load_settings
from trustspace.policy import RelayRules, SenderBinding

MSSANTE = str(Path(sys.executable).with_name("mssante"))
FINGERPRINT = "AB:" * 31 + "AB"


def _load(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "mssante.toml"
    path.write_text(text, encoding="utf-8")
    return load_settings(config_file=path, data_dir=tmp_path, env={})


def test_defaults(tmp_path: Path) -> None:
    settings = _load(tmp_path, "")
    assert settings.smtp.relay_sender_binding == "trust-space"
    assert settings.relay_peers == {}
    rules = RelayRules.from_settings(settings)
    assert rules.binding is SenderBinding.TRUST_SPACE
    assert rules.policies.server == frozenset(settings.certificates.server_policies)


def test_relay_peers_table_is_read_and_normalised(tmp_path: Path) -> None:
    settings = _load(tmp_path, (
        '[smtp]\nrelay_sender_binding = "certificate"\n'
        "[certificates]\nserver_policies = [\"2.999.1\"]\n"
        "[relay_peers]\n"
        '"MX.Operateur-B.fr" = ["CH-Exemple.mssante.fr", "hôpital-é.mssante.fr"]\n'
        f'"sha256:{FINGERPRINT}" = "ght-sud.mssante.fr"\n'
    ))
    rules = RelayRules.from_settings(settings)
    assert rules.binding is SenderBinding.CERTIFICATE
    assert rules.policies.server == frozenset({"2.999.1"})
    assert rules.peers == {
        "mx.operateur-b.fr": ("ch-exemple.mssante.fr", "xn--hpital--hya6g.mssante.fr"),
        "sha256:" + "ab" * 32: ("ght-sud.mssante.fr",),
    }


@pytest.mark.parametrize(("text", "key", "allowed"), [
    ('[smtp]\nrelay_sender_binding = "strict"\n', "smtp.relay_sender_binding",
     "one of none, trust-space, certificate"),
    ('[certificates]\nserver_policies = ["IGC-Santé serveur"]\n', "certificates.server_policies",
     "dotted form"),
    ('[relay_peers]\n"sha256:abcd" = ["x.mssante.fr"]\n', "relay_peers.sha256:abcd",
     "64 hex digits"),
    ('[relay_peers]\n"mx.b.fr" = []\n', "relay_peers.mx.b.fr", "non-empty list"),
    ('[relay_peers]\n"not a name" = ["x.mssante.fr"]\n', "relay_peers.not a name",
     "certificate DNS name"),
])
def test_bad_values_are_refused_naming_key_and_value(
    tmp_path: Path, text: str, key: str, allowed: str
) -> None:
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, text)
    assert err.value.key == key
    assert allowed in str(err.value)


def test_check_config_exits_2_naming_the_value(tmp_path: Path) -> None:
    (tmp_path / "mssante.toml").write_text('[smtp]\nrelay_sender_binding = "strict"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("MSSANTE_")}
    env["MSSANTE_HOME"] = str(tmp_path)
    result = subprocess.run([MSSANTE, "check-config"], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2
    assert "smtp.relay_sender_binding = 'strict'" in result.stderr
