"""The managed slapd's access control, seen through real clients (python-ldap, ldapsearch)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator

import argon2
import ldap
import pytest

from directory_ldap import DirectoryEntry
from directory_ldap.layout import local_dn
from directory_ldap.service import Directory
from tests.fixtures.slapd import SlapdHandle

APP_PASSWORD = "correct horse battery staple"


@pytest.fixture
async def directory(managed_slapd: SlapdHandle) -> AsyncIterator[Directory]:
    d = managed_slapd.directory()
    await d.start(manage=False)
    yield d
    await d.stop()


@pytest.fixture
async def alice(directory: Directory) -> DirectoryEntry:
    h = await _hash(APP_PASSWORD)
    entry = DirectoryEntry(
        address="alice.martin@mssante.test", type="PER", given_name="Alice", surname="Martin",
        idnat="810001234567", rpps="10001234567", specialty_label="Cardiologie",
        city="TOULOUSE", postal_code="31000", department="31", password_hashes=(h,),
    )
    await directory.publish(entry)
    await directory.publish(DirectoryEntry(
        address="secret.rouge@mssante.test", type="PER", given_name="Sam", surname="Martinez",
        liste_rouge=True,
    ))
    return entry


async def _hash(pw: str) -> str:
    import asyncio

    return await asyncio.to_thread(argon2.PasswordHasher().hash, pw)


def _user_conn(handle: SlapdHandle, url: str, dn: str, pw: str) -> ldap.ldapobject.LDAPObject:
    conn = ldap.initialize(url)
    conn.set_option(ldap.OPT_X_TLS_CACERTFILE, str(handle.ca_file))
    conn.set_option(ldap.OPT_X_TLS_REQUIRE_CERT, ldap.OPT_X_TLS_DEMAND)
    conn.set_option(ldap.OPT_X_TLS_NEWCTX, 0)
    conn.simple_bind_s(dn, pw)
    return conn


def _ldapsearch(handle: SlapdHandle, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LDAPTLS_CACERT": str(handle.ca_file), "LDAPTLS_REQCERT": "demand"}
    return subprocess.run(
        ["ldapsearch", "-LLL", "-o", "nettimeout=5", "-b", handle.base_dn, *args],
        capture_output=True, text=True, env=env, timeout=20, check=False,
    )


def _bind_dn(handle: SlapdHandle, address: str) -> str:
    return local_dn(handle.base_dn, address, "PER")


async def test_user_binds_with_address_and_application_password_over_ldaps(
    managed_slapd: SlapdHandle, alice: DirectoryEntry
) -> None:
    # Thunderbird's address-book filter for "mar".
    flt = "(|(cn=*mar*)(mail=*mar*)(sn=*mar*)(givenName=*mar*))"
    out = _ldapsearch(
        managed_slapd, "-H", managed_slapd.layout.ldaps_url, "-x",
        "-D", _bind_dn(managed_slapd, alice.address), "-w", APP_PASSWORD,
        flt, "cn", "mail", "userPassword",
    )
    assert out.returncode == 0, out.stderr
    assert "mail: alice.martin@mssante.test" in out.stdout
    assert "cn: Alice Martin" in out.stdout
    assert "userPassword" not in out.stdout  # never readable
    assert "secret.rouge" not in out.stdout  # liste rouge hidden from users


async def test_starttls_works_and_clear_text_bind_is_refused(
    managed_slapd: SlapdHandle, alice: DirectoryEntry
) -> None:
    dn = _bind_dn(managed_slapd, alice.address)
    ok = _ldapsearch(managed_slapd, "-ZZ", "-H", managed_slapd.layout.ldap_url, "-x",
                     "-D", dn, "-w", APP_PASSWORD, "(mail=alice*)", "mail")
    assert ok.returncode == 0, ok.stderr
    assert "alice.martin@mssante.test" in ok.stdout
    clear = _ldapsearch(managed_slapd, "-H", managed_slapd.layout.ldap_url, "-x",
                        "-D", dn, "-w", APP_PASSWORD, "(mail=alice*)", "mail")
    assert clear.returncode != 0
    assert "Confidentiality required" in clear.stderr


async def test_anonymous_search_is_refused(
    managed_slapd: SlapdHandle, alice: DirectoryEntry
) -> None:
    out = _ldapsearch(managed_slapd, "-H", managed_slapd.layout.ldaps_url, "-x", "(mail=*)")
    assert out.returncode != 0
    assert "anonymous bind disallowed" in out.stderr
    assert "alice" not in out.stdout


async def test_wrong_password_is_refused(managed_slapd: SlapdHandle, alice: DirectoryEntry) -> None:
    out = _ldapsearch(
        managed_slapd, "-H", managed_slapd.layout.ldaps_url, "-x",
        "-D", _bind_dn(managed_slapd, alice.address), "-w", "not the password", "(mail=*)",
    )
    assert out.returncode == 49 or "Invalid credentials (49)" in out.stderr


async def test_users_cannot_write(managed_slapd: SlapdHandle, alice: DirectoryEntry) -> None:
    dn = _bind_dn(managed_slapd, alice.address)
    conn = _user_conn(managed_slapd, managed_slapd.layout.ldaps_url, dn, APP_PASSWORD)
    with pytest.raises(ldap.INSUFFICIENT_ACCESS):
        conn.modify_s(dn, [(ldap.MOD_REPLACE, "cn", [b"Mallory"])])
    with pytest.raises(ldap.INSUFFICIENT_ACCESS):
        conn.add_s(_bind_dn(managed_slapd, "new@mssante.test"), [
            ("objectClass", [b"inetOrgPerson"]), ("cn", [b"x"]), ("sn", [b"x"]),
        ])
    with pytest.raises(ldap.INSUFFICIENT_ACCESS):
        conn.delete_s(dn)
    conn.unbind_s()


async def test_liste_rouge_visible_to_service_identity_only(
    directory: Directory, managed_slapd: SlapdHandle, alice: DirectoryEntry
) -> None:
    found = await directory.lookup("secret.rouge@mssante.test")
    assert found is not None and found.liste_rouge
    # the service's own search leaves liste rouge out unless asked
    assert "secret.rouge@mssante.test" not in [e.address for e in await directory.search("sam")]
    assert [e.address for e in await directory.search("sam", include_liste_rouge=True)] == [
        "secret.rouge@mssante.test"
    ]
    conn = _user_conn(managed_slapd, managed_slapd.layout.ldaps_url,
                      _bind_dn(managed_slapd, alice.address), APP_PASSWORD)
    assert conn.search_s(managed_slapd.base_dn, ldap.SCOPE_SUBTREE, "(sn=Martinez)") == []
    conn.unbind_s()


async def test_client_certificate_binds_with_sasl_external(
    directory: Directory, managed_slapd: SlapdHandle
) -> None:
    await directory.publish(DirectoryEntry(
        address="client@mssante.test", type="APP", structure_name="DPI Hopital Test",
    ))
    pki = managed_slapd.settings.data_dir / "pki"
    conn = ldap.initialize(managed_slapd.layout.ldaps_url)
    conn.set_option(ldap.OPT_X_TLS_CACERTFILE, str(managed_slapd.ca_file))
    conn.set_option(ldap.OPT_X_TLS_CERTFILE, str(pki / "client.pem"))
    conn.set_option(ldap.OPT_X_TLS_KEYFILE, str(pki / "client.key"))
    conn.set_option(ldap.OPT_X_TLS_NEWCTX, 0)
    conn.sasl_external_bind_s()
    assert conn.whoami_s() == "dn:" + local_dn(managed_slapd.base_dn, "client@mssante.test", "APP")
    with pytest.raises(ldap.INSUFFICIENT_ACCESS):
        conn.delete_s(local_dn(managed_slapd.base_dn, "client@mssante.test", "APP"))
    conn.unbind_s()
