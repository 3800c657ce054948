"""Settings: defaults, file, environment, and every refusal naming file, key and value."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from config import ConfigError, load_settings, render_template, write_template


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mssante.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_are_embedded(tmp_path: Path) -> None:
    s = load_settings(data_dir=tmp_path, env={})
    assert s.embedded
    assert s.smtp.relay_port == 2525 and s.smtp.submission_port == 2587
    assert s.smtp.submissions_port == 2465
    assert s.imap.port == 2143 and s.imap.tls_port == 2993
    assert s.directory.port == 2389 and s.directory.ldaps_port == 2636
    assert s.web.port == 8443
    assert s.database_url == f"sqlite+aiosqlite:///{tmp_path / 'mssante.db'}"
    assert s.key_file == tmp_path / "master.key"
    assert s.tls_anchor_files == (tmp_path / "pki" / "ca.pem",)
    assert s.storage.body_retention_days == 92
    assert s.smtp.queue_lifetime_hours == 120


def test_data_dir_from_environment(tmp_path: Path) -> None:
    s = load_settings(env={"MSSANTE_HOME": str(tmp_path)})
    assert s.data_dir == tmp_path
    assert s.config_file == tmp_path / "mssante.toml"


def test_file_then_environment(tmp_path: Path) -> None:
    cfg = write(
        tmp_path,
        '[gateway]\ndomains = ["a.mssante.test", "b.mssante.test"]\n'
        "[smtp]\nrelay_port = 2600\n"
        '[transport]\n"hopital-b.mssante.test" = "127.0.0.1:2526"\n',
    )
    s = load_settings(config_file=cfg, data_dir=tmp_path, env={"MSSANTE_SMTP_RELAY_PORT": "2700"})
    assert s.gateway.domains == ("a.mssante.test", "b.mssante.test")
    assert s.smtp.relay_port == 2700
    assert s.transport == {"hopital-b.mssante.test": "127.0.0.1:2526"}
    assert s.is_local_domain("B.MSSANTE.TEST.")
    assert s.hostname == "mx.a.mssante.test"


def test_environment_types(tmp_path: Path) -> None:
    s = load_settings(
        data_dir=tmp_path,
        env={
            "MSSANTE_DIRECTORY_REQUIRE_IN_DIRECTORY": "yes",
            "MSSANTE_GATEWAY_SHUTDOWN_GRACE": "2.5",
            "MSSANTE_TLS_ANCHORS": "/a.pem, /b.pem",
        },
    )
    assert s.directory.require_in_directory is True
    assert s.gateway.shutdown_grace == 2.5
    assert s.tls.anchors == ("/a.pem", "/b.pem")


def test_template_is_valid_toml_and_loads(tmp_path: Path) -> None:
    parsed = tomllib.loads(render_template())
    assert set(parsed) >= {"gateway", "database", "smtp", "imap", "transport"}
    path = tmp_path / "mssante.toml"
    assert write_template(path, {"gateway": {"domains": ["x.mssante.test"]}})
    assert not write_template(path)
    s = load_settings(config_file=path, data_dir=tmp_path, env={})
    assert s.gateway.domains == ("x.mssante.test",)
    assert "#relay_port = 2525" in path.read_text()


@pytest.mark.parametrize(
    ("text", "key", "value_fragment", "allowed_fragment"),
    [
        ("[smtp\nrelay_port = 1\n", "(file)", "…", "invalid TOML"),
        ("[smtp]\nrelay_prot = 25\n", "smtp.relay_prot", "25", "unknown key"),
        ("[smtpd]\nx = 1\n", "[smtpd]", "…", "unknown section"),
        ('[smtp]\nrelay_port = "25"\n', "smtp.relay_port", "'25'", "an integer"),
        ("[smtp]\nrelay_port = 70000\n", "smtp.relay_port", "70000", "port number from 1 to 65535"),
        ("[smtp]\nrelay_port = -1\n", "smtp.relay_port", "-1", "port number"),
        ('[gateway]\nmode = "cloud"\n', "gateway.mode", "'cloud'", "embedded, production"),
        ("[gateway]\ndomains = [1]\n", "gateway.domains", "[1]", "a list of strings"),
        ("[directory]\nrequire_in_directory = 1\n", "directory.require_in_directory", "1",
         "a boolean"),
        ("[smtp]\nrelay_port = 2143\n", "imap.port", "2143", "not already used by smtp.relay_port"),
        ('[transport]\n"b.test" = "nohost"\n', "transport.b.test", "'nohost'", "host:port"),
        ('[gateway]\nmode = "production"\n', "tls.cert_file", "''", "required in production"),
    ],
)
def test_bad_file_names_file_key_value_and_allowed(
    tmp_path: Path, text: str, key: str, value_fragment: str, allowed_fragment: str
) -> None:
    cfg = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_settings(config_file=cfg, data_dir=tmp_path, env={})
    message = str(info.value)
    assert str(cfg) in message
    assert key in message
    assert value_fragment in message
    assert allowed_fragment in message


def test_bad_environment_names_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(data_dir=tmp_path, env={"MSSANTE_IMAP_PORT": "abc"})
    assert "MSSANTE_IMAP_PORT" in str(info.value) and "'abc'" in str(info.value)
    with pytest.raises(ConfigError) as info:
        load_settings(data_dir=tmp_path, env={"MSSANTE_NOPE_X": "1"})
    assert "MSSANTE_NOPE_X" in str(info.value) and "unknown variable" in str(info.value)


def test_explicit_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(config_file=tmp_path / "absent.toml", data_dir=tmp_path, env={})
    assert "does not exist" in str(info.value)
