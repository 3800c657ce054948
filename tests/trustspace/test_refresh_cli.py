"""``mssante trustspace``: show, check and refresh, with their exit codes."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from gateway.commands.trustspace import command
from gateway.context import CliContext
from tests.fixtures.whitelist import SAMPLE_WHITELIST, WhitelistServer


def run(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    """Runs ``mssante --data-dir <tmp> trustspace <args>`` (the group gets the same context
    object the ``mssante`` entry point builds, so the test does not depend on every other
    sub-command importing cleanly)."""
    obj = CliContext(config_file=None, data_dir=tmp_path)
    result = CliRunner().invoke(command, list(args), obj=obj)
    return result.exit_code, result.stdout, result.stderr


def test_show_writes_the_embedded_default_and_lists_it(tmp_path: Path) -> None:
    code, out, _ = run(tmp_path, "show")
    assert code == 0
    assert "domains: 1" in out
    assert f"source: {tmp_path / 'trustspace.xml'}" in out
    assert "mssante.test" in out


def test_show_limits_the_list_unless_all(tmp_path: Path) -> None:
    names = "".join(f"<Domaine><Nom>d{i:02}.mssante.fr</Nom></Domaine>" for i in range(30))
    (tmp_path / "trustspace.xml").write_text(
        f"<ListeBlanche xmlns='https://listeblanche.mssante.fr/schema'>{names}</ListeBlanche>"
    )
    code, out, _ = run(tmp_path, "show")
    assert code == 0 and "domains: 30" in out and "10 more (use --all)" in out
    code, out, _ = run(tmp_path, "show", "--all")
    assert code == 0 and "d29.mssante.fr" in out and "more" not in out


def test_check_in_trust_space_exits_0(tmp_path: Path) -> None:
    (tmp_path / "trustspace.xml").write_bytes(SAMPLE_WHITELIST)
    code, out, _ = run(tmp_path, "check", "xn--hpital--hya6g.mssante.fr")
    assert code == 0 and "is in the MSSanté trust space" in out


def test_check_unicode_form_exits_0(tmp_path: Path) -> None:
    (tmp_path / "trustspace.xml").write_bytes(SAMPLE_WHITELIST)
    assert run(tmp_path, "check", "Hôpital-É.mssante.fr.")[0] == 0


def test_check_not_in_trust_space_exits_1(tmp_path: Path) -> None:
    (tmp_path / "trustspace.xml").write_bytes(SAMPLE_WHITELIST)
    code, out, _ = run(tmp_path, "check", "gmail.com")
    assert code == 1 and "gmail.com is not in the MSSanté trust space" in out


def test_check_not_a_domain_exits_2_naming_the_value(tmp_path: Path) -> None:
    code, _, err = run(tmp_path, "check", "not a domain")
    assert code == 2
    assert "'not a domain' is not a domain name" in err


def test_check_with_invalid_file_exits_1(tmp_path: Path) -> None:
    (tmp_path / "trustspace.xml").write_bytes(b"<oops")
    code, _, err = run(tmp_path, "check", "a.mssante.fr")
    assert code == 1 and "no valid trust space" in err


def test_refresh_from_file_exits_0(tmp_path: Path) -> None:
    code, out, _ = run(tmp_path, "refresh")
    assert code == 0 and "1 domains" in out


def test_refresh_refused_exits_1(tmp_path: Path) -> None:
    (tmp_path / "trustspace.xml").write_bytes(b"")
    code, _, err = run(tmp_path, "refresh")
    assert code == 1 and "refresh refused (empty)" in err and "previous list stays" in err


def test_refresh_from_https(tmp_path: Path, whitelist_https: WhitelistServer) -> None:
    (tmp_path / "mssante.toml").write_text(
        f'[trustspace]\nurl = "{whitelist_https.url}"\nca_file = "{whitelist_https.ca.ca_file}"\n'
    )
    code, out, _ = run(tmp_path, "refresh")
    assert code == 0 and "7 domains" in out
    assert (tmp_path / "trustspace.last-good.xml").read_bytes() == SAMPLE_WHITELIST
