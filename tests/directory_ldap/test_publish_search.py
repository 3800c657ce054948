"""Publishing API and search, against the shared managed slapd."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from directory_ldap import DirectoryEntry, ImmutableAttributeError
from directory_ldap.service import Directory
from tests.fixtures.slapd import SlapdHandle


@pytest.fixture
async def directory(managed_slapd: SlapdHandle) -> AsyncIterator[Directory]:
    d = managed_slapd.directory()
    await d.start(manage=False)
    yield d
    await d.stop()


async def test_publish_update_unpublish(directory: Directory) -> None:
    entry = DirectoryEntry(address="paul.durand@mssante.test", given_name="Paul",
                           surname="Durand", specialty_label="Pédiatrie", city="LYON")
    await directory.publish(entry)
    found = await directory.lookup("Paul.Durand@mssante.test")
    assert found is not None
    assert (found.common_name, found.specialty_label, found.origin) == (
        "Paul Durand", "Pédiatrie", "local")
    await directory.publish(DirectoryEntry(address="paul.durand@mssante.test", given_name="Paul",
                                           surname="Durand", city="LILLE"))
    found = await directory.lookup("paul.durand@mssante.test")
    assert found is not None and found.city == "LILLE" and found.specialty_label == ""
    assert await directory.unpublish("paul.durand@mssante.test") is True
    assert await directory.lookup("paul.durand@mssante.test") is None
    assert await directory.unpublish("paul.durand@mssante.test") is False


async def test_type_never_changes_once_published(directory: Directory) -> None:
    await directory.publish(DirectoryEntry(address="accueil@mssante.test", type="ORG",
                                           structure_name="Clinique du Parc"))
    with pytest.raises(ImmutableAttributeError, match="published as ORG"):
        await directory.publish(DirectoryEntry(address="accueil@mssante.test", type="PER",
                                               surname="Accueil"))


def test_entry_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="invalid mailbox address 'not-an-address'"):
        DirectoryEntry(address="not-an-address")
    with pytest.raises(ValueError, match="invalid mailbox type 'XYZ'"):
        DirectoryEntry(address="a@b.test", type="XYZ")
    with pytest.raises(ValueError, match="argon2"):
        DirectoryEntry(address="a@b.test", password_hashes=("plain",))


async def test_search_every_word_must_match(directory: Directory) -> None:
    await directory.publish(DirectoryEntry(
        address="j.quercy@mssante.test", given_name="Jeanne", surname="Quercy",
        specialty_label="Cardiologie", postal_code="31400", city="TOULOUSE", department="31"))
    await directory.publish(DirectoryEntry(
        address="l.quercy@mssante.test", given_name="Luc", surname="Quercy",
        specialty_label="Cardiologie", postal_code="69003", city="LYON", department="69"))
    hits = await directory.search("quercy cardio 31")
    assert [e.address for e in hits] == ["j.quercy@mssante.test"]
    both = await directory.search("quercy cardio")
    assert {e.address for e in both} >= {"j.quercy@mssante.test", "l.quercy@mssante.test"}
    assert len(await directory.search("quercy", limit=1)) == 1
    assert await directory.search("   ") == []
    # filter metacharacters are escaped, not interpreted (RFC 4515 §3)
    assert await directory.search("*)(mail=*") == []


async def test_require_in_directory_policy(managed_slapd: SlapdHandle) -> None:
    from config import load_settings

    off = managed_slapd.directory()
    assert await off.recipient_known("nobody@nowhere.test") is True  # off by default
    s = managed_slapd.settings
    on_settings = load_settings(
        data_dir=s.data_dir, env={},
        overrides={"directory": {"port": managed_slapd.layout.port,
                                 "ldaps_port": managed_slapd.layout.ldaps_port,
                                 "require_in_directory": True},
                   "tls": {"cert_file": str(s.tls_cert_file), "key_file": str(s.tls_key_file),
                           "anchors": [str(a) for a in s.tls_anchor_files]}})
    on = Directory(on_settings, layout=managed_slapd.layout, workers=1)
    on.managed = None
    await on.start(manage=False)
    await on.publish(DirectoryEntry(address="known@mssante.test", surname="Known"))
    assert await on.recipient_known("known@mssante.test") is True
    assert await on.recipient_known("nobody@nowhere.test") is False
    await on.stop()
    await off.stop()
