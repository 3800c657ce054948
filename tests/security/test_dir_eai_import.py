"""Internationalised addresses (RFC 6531/6532) in the national extract.

Before: rows whose "Adresse BAL" had a non-ASCII local part or an internationalised domain
were skipped as "invalid address", although the gateway advertises SMTPUTF8. Now they are
imported, found by lookup and search, and the import report says which ones have no ASCII
form for the LDAP ``mail`` attribute (IA5String, RFC 4524) and where they are published.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from config import load_settings
from directory_ldap.extract import REAL_COLUMNS
from directory_ldap.sample_extract import write_sample
from directory_ldap.service import Directory, slapd_layout
from gateway.cli import main
from tests.fixtures.slapd import make_test_pki

pytestmark = pytest.mark.timeout(240)
UTF8_LOCAL = "élodie.lefèvre@medecin.mssante.fr"
IDN_DOMAIN = "jean.dupont@hôpital-é.mssante.fr"
IDN_ASCII = "jean.dupont@xn--hpital--hya6g.mssante.fr"


def _row(address: str, surname: str, given: str) -> str:
    values = dict.fromkeys(REAL_COLUMNS, "")
    values.update({"Type de BAL": "PER", "Adresse BAL": address, "Nom d'exercice": surname,
                   "Prénom d'exercice": given, "L6LIGNEACHEMINEMENT structure BAL": "LYON"})
    return "|".join(values[c] for c in REAL_COLUMNS)


def _data_dir(tmp_path: Path) -> Path:
    pki = make_test_pki(tmp_path / "pki")
    (tmp_path / "mssante.toml").write_text(
        "[directory]\nport = 0\nldaps_port = 0\nsync_writes = false\n"
        f'[tls]\ncert_file = "{pki["cert"]}"\nkey_file = "{pki["key"]}"\n'
        f'anchors = ["{pki["ca"]}"]\n', encoding="utf-8")
    return tmp_path


def test_internationalised_addresses_are_imported(tmp_path: Path) -> None:
    data = _data_dir(tmp_path)
    extract = tmp_path / "extract.txt"
    write_sample(extract, 5, extra_lines=[
        _row(UTF8_LOCAL, "LEFÈVRE", "Élodie"), _row(IDN_DOMAIN, "DUPONT", "Jean"),
        _row("pas une adresse@x", "X", "Y"),
    ])
    runner = CliRunner()
    out = runner.invoke(main, ["--data-dir", str(data), "directory", "import", str(extract)])
    assert out.exit_code == 0, out.output
    assert "imported 7 rows" in out.output and "7 added" in out.output, out.output
    assert "invalid address 'pas une adresse@x'" in out.output
    assert "élodie" not in out.output.split("skipped")[-1]
    # The report says what was done with them.
    assert "2 internationalised addresses (RFC 6531)" in out.output, out.output
    assert "1 with a non-ASCII local part" in out.output, out.output

    show = runner.invoke(main, ["--data-dir", str(data), "directory", "show", UTF8_LOCAL])
    assert show.exit_code == 0, show.output
    assert UTF8_LOCAL in show.output
    found = runner.invoke(main, ["--data-dir", str(data), "directory", "search", "elodie"])
    assert UTF8_LOCAL in found.output, found.output
    # A cut list says so (before: it stopped at --limit without a word).
    cut = runner.invoke(main, ["--data-dir", str(data), "directory", "search", "--limit", "3",
                               "mssante"])
    assert cut.exit_code == 0, cut.output
    assert "3 result(s)" in cut.output
    assert "more than 3 entries match 'mssante': only the first 3 are shown" in cut.output
    # Looked up by either form of an internationalised domain.
    for form in (IDN_DOMAIN, IDN_ASCII):
        show = runner.invoke(main, ["--data-dir", str(data), "directory", "show", form])
        assert show.exit_code == 0 and IDN_DOMAIN in show.output, show.output

    # In LDAP: the A-label form in mail, the UTF-8 form in mssanteMailUTF8.
    settings = load_settings(data_dir=data, env={})
    directory = Directory(settings)

    async def ldap_view() -> str:
        await directory.start()
        try:
            layout = slapd_layout(settings)
            done = await asyncio.to_thread(
                subprocess.run,
                ["ldapsearch", "-LLL", "-Q", "-Y", "EXTERNAL", "-H", directory.layout.ldapi_url
                 if directory.layout else layout.ldapi_url, "-o", "ldif-wrap=no",
                 "-b", settings.directory.base_dn, f"(mail={IDN_ASCII})", "mail",
                 "mssanteMailUTF8"],
                capture_output=True, text=True, timeout=30, check=False,
                env=dict(os.environ))
            return done.stdout + done.stderr
        finally:
            await directory.stop()

    seen = asyncio.run(ldap_view())
    assert f"mail: {IDN_ASCII}" in seen, seen
    assert "mssanteMailUTF8::" in seen, seen
