"""What LDAP address books (Thunderbird, Outlook) get from the managed slapd: accents and
case ignored in names, professions and cities, and an honest size limit with paging.

Before: ``(cn=*etienne*)`` found nothing where ``(cn=*Étienne*)`` found the entry (only the
``mssante directory search`` command folded accents), and a search stopped at 500 entries;
checked here with ldapsearch and python-ldap bound as an ordinary user over LDAPS.
"""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
from collections.abc import AsyncIterator

import argon2
import ldap
import pytest
from ldap.controls import SimplePagedResultsControl

from directory_ldap import DirectoryEntry
from directory_ldap.layout import local_dn
from directory_ldap.service import Directory
from directory_ldap.slapd_config import USER_SIZE_LIMIT
from tests.fixtures.slapd import SlapdHandle

pytestmark = pytest.mark.timeout(300)
PASSWORD = "correct horse battery staple"
READER = "lecteur.annuaire@mssante.test"
ETIENNE = "etienne.dupre@mssante.test"
MANY = USER_SIZE_LIMIT + 20


@pytest.fixture
async def directory(managed_slapd: SlapdHandle) -> AsyncIterator[Directory]:
    d = managed_slapd.directory()
    await d.start(manage=False)
    h = await asyncio.to_thread(argon2.PasswordHasher().hash, PASSWORD)
    await d.publish(DirectoryEntry(address=READER, given_name="Lea", surname="Lecteur",
                                   password_hashes=(h,)))
    await d.publish(DirectoryEntry(
        address=ETIENNE, display_name="Dr Étienne Dupré", given_name="Étienne", surname="Dupré",
        city="SAINT-ÉTIENNE",
        profession_label="Médecin", specialty_label="Pédiatrie",
        structure_name="Hôpital Nord", postal_code="42000"))
    yield d
    await d.stop()


def _ldapsearch(handle: SlapdHandle, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LDAPTLS_CACERT": str(handle.ca_file), "LDAPTLS_REQCERT": "demand"}
    return subprocess.run(
        ["ldapsearch", "-LLL", "-o", "nettimeout=5", "-o", "ldif-wrap=no",
         "-H", handle.layout.ldaps_url, "-x", "-D", local_dn(handle.base_dn, READER, "PER"),
         "-w", PASSWORD, "-b", handle.base_dn, *args],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )


@pytest.mark.parametrize("flt", [
    "(cn=*etienne*)", "(cn=*ETIENNE*)", "(cn=*Étienne*)", "(cn=dr etienne dupre)",
    "(sn=dupre*)", "(givenName=etienne)", "(displayName=*etienne*)",
    # Thunderbird's address-book and autocomplete filters, Outlook's
    "(|(cn=*etien*)(mail=*etien*)(sn=*etien*)(givenName=*etien*))",
    "(|(cn=etien*)(mail=etien*)(sn=etien*)(givenName=etien*)(displayName=etien*))",
    "(l=*saint-etienne*)", "(l=saint-etienne)", "(o=*hopital*)",
    "(mssanteProfessionLabel=medecin)", "(mssanteSpecialtyLabel=pediatrie)",
    "(mssanteStructureName=hopital nord)",
])
async def test_accents_and_case_ignored(
    managed_slapd: SlapdHandle, directory: Directory, flt: str
) -> None:
    out = await asyncio.to_thread(_ldapsearch, managed_slapd, flt, "mail", "cn", "l")
    assert out.returncode == 0, out.stderr
    assert f"mail: {ETIENNE}" in out.stdout, (flt, out.stdout)
    # What clients show is unchanged: the published spelling.
    shown = base64.b64encode("Dr Étienne Dupré".encode()).decode()
    assert f"cn:: {shown}\n" in out.stdout, out.stdout  # LDIF: base64 for non-ASCII
    assert out.stdout.count("cn:: ") == 1


async def test_displayed_values_keep_their_accents(
    managed_slapd: SlapdHandle, directory: Directory
) -> None:
    found = await directory.lookup(ETIENNE)
    assert found is not None
    assert (found.common_name, found.city, found.profession_label) == (
        "Dr Étienne Dupré", "SAINT-ÉTIENNE", "Médecin")
    hits = await directory.search("etienne pediatrie")
    assert [e.address for e in hits] == [ETIENNE]


def _user_conn(handle: SlapdHandle) -> ldap.ldapobject.LDAPObject:
    conn = ldap.initialize(handle.layout.ldaps_url)
    conn.set_option(ldap.OPT_X_TLS_CACERTFILE, str(handle.ca_file))
    conn.set_option(ldap.OPT_X_TLS_REQUIRE_CERT, ldap.OPT_X_TLS_DEMAND)
    conn.set_option(ldap.OPT_X_TLS_NEWCTX, 0)
    conn.simple_bind_s(local_dn(handle.base_dn, READER, "PER"), PASSWORD)
    return conn


async def test_size_limit_is_signalled_and_paging_returns_everything(
    managed_slapd: SlapdHandle, directory: Directory
) -> None:
    for i in range(MANY):
        await directory.publish(DirectoryEntry(
            address=f"taille.{i}@mssante.test", given_name=f"Nom{i}", surname="Taillemax"))
    flt = "(sn=taillemax)"
    cut = await asyncio.to_thread(_ldapsearch, managed_slapd, flt, "mail")
    assert cut.returncode == 4, (cut.returncode, cut.stderr[-300:])
    assert "Size limit exceeded" in cut.stderr
    assert cut.stdout.count("mail: taille.") == USER_SIZE_LIMIT

    paged = await asyncio.to_thread(
        _ldapsearch, managed_slapd, "-E", "pr=100/noprompt", flt, "mail")
    assert paged.returncode == 0, paged.stderr[-300:]
    assert paged.stdout.count("mail: taille.") == MANY

    conn = await asyncio.to_thread(_user_conn, managed_slapd)
    try:
        with pytest.raises(ldap.SIZELIMIT_EXCEEDED):
            await asyncio.to_thread(conn.search_ext_s, managed_slapd.base_dn,
                                    ldap.SCOPE_SUBTREE, flt, ["mail"])
        ctrl = SimplePagedResultsControl(True, size=200, cookie="")
        seen = 0
        while True:
            msgid = conn.search_ext(managed_slapd.base_dn, ldap.SCOPE_SUBTREE, flt, ["mail"],
                                    serverctrls=[ctrl])
            _t, data, _m, ctrls = await asyncio.to_thread(conn.result3, msgid)
            seen += sum(1 for dn, _a in data if dn)
            cookie = next((c.cookie for c in ctrls
                           if c.controlType == SimplePagedResultsControl.controlType), b"")
            if not cookie:
                break
            ctrl.cookie = cookie
        assert seen == MANY
    finally:
        conn.unbind_s()
