"""``mssante directory`` sub-commands, run through the real command line and a real slapd."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from directory_ldap.sample_extract import write_sample
from gateway.cli import main
from tests.fixtures.slapd import make_test_pki


def _data_dir(tmp_path: Path) -> Path:
    pki = make_test_pki(tmp_path / "pki")
    (tmp_path / "mssante.toml").write_text(
        "[directory]\nport = 0\nldaps_port = 0\nsync_writes = false\n"
        f'[tls]\ncert_file = "{pki["cert"]}"\nkey_file = "{pki["key"]}"\n'
        f'anchors = ["{pki["ca"]}"]\n', encoding="utf-8")
    return tmp_path


def test_import_search_show(tmp_path: Path) -> None:
    data = _data_dir(tmp_path)
    extract = tmp_path / "extract.txt"
    write_sample(extract, 30, extra_lines=["|".join(["PER", "bad address"] + [""] * 29)])
    runner = CliRunner()
    out = runner.invoke(main, ["--data-dir", str(data), "directory", "import", str(extract)])
    assert out.exit_code == 0, out.output
    assert "line 32: skipped: invalid address 'bad address'" in out.output
    assert "imported 30 rows" in out.output and "30 added" in out.output
    again = runner.invoke(main, ["--data-dir", str(data), "directory", "import", str(extract)])
    assert "0 added, 0 updated, 0 deleted, 30 unchanged" in again.output

    found = runner.invoke(main, ["--data-dir", str(data), "directory", "search", "martin 31"])
    assert found.exit_code == 0, found.output
    assert "marie.martin.0@medecin.mssante.fr" in found.output

    show = runner.invoke(main, ["--data-dir", str(data), "directory", "show",
                                "marie.martin.0@medecin.mssante.fr"])
    assert show.exit_code == 0, show.output
    assert "rpps: 10000000000" in show.output and "city: TOULOUSE" in show.output


def test_refusals(tmp_path: Path) -> None:
    data = _data_dir(tmp_path)
    runner = CliRunner()
    missing = runner.invoke(main, ["--data-dir", str(data), "directory", "import",
                                   str(tmp_path / "nope.txt")])
    assert missing.exit_code == 2 and "nope.txt does not exist" in missing.output
    bad = tmp_path / "bad.txt"
    bad.write_text("Nom|Prénom\n", encoding="utf-8")
    nocol = runner.invoke(main, ["--data-dir", str(data), "directory", "import", str(bad)])
    assert nocol.exit_code == 2 and "no 'Adresse BAL' column" in nocol.output
    empty = runner.invoke(main, ["--data-dir", str(data), "directory", "search", "  "])
    assert empty.exit_code == 2 and "search text is empty" in empty.output
    unknown = runner.invoke(main, ["--data-dir", str(data), "directory", "show",
                                   "nobody@nowhere.test"])
    assert unknown.exit_code == 1
    assert "nobody@nowhere.test is not in the directory" in unknown.output
