"""Import of the national extract: 10,000 rows in the real layout, bad rows, re-import."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import ldap
import pytest

from directory_ldap import DirectoryEntry, DirectoryError
from directory_ldap.extract import REAL_COLUMNS, ExtractError, read_extract
from directory_ldap.importer import DELETED_LISTED, import_extract, journal_path
from directory_ldap.layout import NATIONAL_BRANCH, branch_dn
from directory_ldap.queries import search_paged, text_filter
from directory_ldap.sample_extract import row, write_sample
from directory_ldap.service import Directory
from tests.fixtures.slapd import SlapdHandle, directory_settings

ROWS = 10_000


async def _hash(password: str) -> str:
    import asyncio

    import argon2

    return await asyncio.to_thread(argon2.PasswordHasher(time_cost=1, memory_cost=8192).hash,
                                   password)


@pytest.fixture
async def directory(tmp_path: Path) -> AsyncIterator[Directory]:
    """A private managed slapd: imports replace the whole national branch."""
    d = Directory(directory_settings(tmp_path), workers=2)
    await d.start()
    yield d
    await d.stop()


def _bad_lines() -> list[str]:
    import random

    good = row(3, random.Random(1))  # same address as row 3: a duplicate
    no_address = list(good)
    no_address[1] = ""
    invalid = list(good)
    invalid[1] = "pas une adresse"
    return ["|".join(good), "|".join(no_address), "|".join(invalid), "too|few|fields"]


async def _national(directory: Directory) -> dict[str, dict[str, list[bytes]]]:
    branch = branch_dn(directory.base_dn, NATIONAL_BRANCH)
    found = await directory.pool.run(
        lambda c: search_paged(c, branch, "(objectClass=mssanteMailbox)", ["*"]))
    return {a["mail"][0].decode().lower(): a for _dn, a in found}


async def test_import_then_reimport_with_changes(directory: Directory, tmp_path: Path) -> None:
    await directory.publish(DirectoryEntry(address="local.only@mssante.test", surname="Local"))
    first = tmp_path / "extract1.txt"
    write_sample(first, ROWS, extra_lines=_bad_lines())
    progress: list[tuple[int, int]] = []
    s1 = await import_extract(directory, first, progress=lambda d, t: progress.append((d, t)))
    assert (s1.rows, s1.added, s1.updated, s1.deleted, s1.failed) == (ROWS, ROWS, 0, 0, [])
    assert [b.line for b in s1.bad] == [ROWS + 2, ROWS + 3, ROWS + 4, ROWS + 5]
    assert "duplicate of line 5" in s1.bad[0].reason
    assert s1.bad[1].reason == "no address"
    assert s1.bad[2].reason == "invalid address 'pas une adresse'"
    assert "3 fields" in s1.bad[3].reason
    assert progress[-1] == (ROWS, ROWS)
    assert "Adresse BAL" in s1.used_columns and "Dématérialisation" in s1.ignored_columns
    assert len(await _national(directory)) == ROWS

    # labels are matched against the generation's vocabulary (accents ignored), then asked
    # for by equality: slapd keeps no substring keys for them
    hits = await directory.search("pediatrie lyon", limit=20)
    assert len(hits) == 20
    assert all(h.specialty_label == "Pédiatrie" and h.city == "LYON" for h in hits)
    await directory.publish(DirectoryEntry(address="rein@mssante.test", surname="Rein",
                                           specialty_label="Néphrologie"))
    assert [h.address for h in await directory.search("nephro")] == ["rein@mssante.test"]
    assert "(mssanteSpecialtyLabel=Pédiatrie)" in text_filter(
        "pédiatrie", labels={"mssanteSpecialtyLabel": frozenset({"Pédiatrie", "Dermatologie"})})

    hit = await directory.lookup(row(0, __import__("random").Random())[1])
    assert hit is not None and hit.origin == "national" and hit.rpps == "10000000000"
    assert hit.city == "TOULOUSE" and hit.postal_code == "31000"

    # second extract: rows 0-99 gone, 100-199 changed, 10000-10049 new
    second = tmp_path / "extract2.txt"
    write_sample(second, ROWS, start=50, skip=set(range(50, 100)),
                 variant_of=set(range(100, 200)))
    s2 = await import_extract(directory, second)
    assert (s2.added, s2.updated, s2.deleted, s2.unchanged) == (50, 100, 100, ROWS - 200)
    assert not s2.failed and not s2.bad and not s2.resumed
    rng = __import__("random").Random()
    assert len(s2.deleted_addresses) == DELETED_LISTED
    assert s2.deleted_addresses[:2] == [row(0, rng)[1], row(1, rng)[1]]
    now = await _national(directory)
    assert len(now) == ROWS - 100 + 50
    assert row(0, __import__("random").Random())[1].lower() not in now
    assert await directory.lookup("local.only@mssante.test") is not None  # local untouched

    # same file again: nothing to do (idempotent)
    s3 = await import_extract(directory, second)
    assert (s3.added, s3.updated, s3.deleted, s3.unchanged) == (0, 0, 0, ROWS - 50)
    assert s3.generation == s2.generation  # nothing changed: nothing rebuilt
    assert directory.layout is not None
    assert sorted(p.name for p in directory.layout.generations_dir.iterdir()) == [s2.generation]


async def test_online_import_of_an_external_server_resumes(
    directory: Directory, tmp_path: Path
) -> None:
    """The LDAP path (what an external server gets): an interrupted run is completed by the
    next one, which the journal left behind reports."""
    full = tmp_path / "full.txt"
    write_sample(full, 2000)
    half = tmp_path / "half.txt"
    write_sample(half, 1000)
    first = await import_extract(directory, half, online=True)
    assert first.added == 1000 and not journal_path(directory).exists()
    # an import of `full` that stopped half-way leaves its journal behind
    journal_path(directory).write_text('{"file": "full.txt"}')
    summary = await import_extract(directory, full, online=True)
    assert summary.resumed and summary.added == 1000 and summary.unchanged == 1000
    assert not journal_path(directory).exists()
    assert len(await _national(directory)) == 2000
    shrunk = await import_extract(directory, half, online=True)
    assert shrunk.deleted == 1000 and len(shrunk.deleted_addresses) == DELETED_LISTED
    assert len(await _national(directory)) == 1000


async def test_preferred_rank_column_is_imported(directory: Directory, tmp_path: Path) -> None:
    f = tmp_path / "ranked.txt"
    f.write_text("Adresse BAL|Nom d'exercice|Rang de préférence\n"
                 "a.dupont@medecin.mssante.fr|Dupont|1\n"
                 "b.dupont@ch-toulouse.mssante.fr|Dupont|2\n"
                 "c.dupont@medecin.mssante.fr|Dupont|premier\n", encoding="utf-8")
    summary = await import_extract(directory, f)
    assert "Rang de préférence" in summary.used_columns and summary.added == 2
    assert [(b.line, b.reason) for b in summary.bad] == [(4, "invalid preferred rank 'premier'")]
    first = await directory.lookup("a.dupont@medecin.mssante.fr")
    second = await directory.lookup("b.dupont@ch-toulouse.mssante.fr")
    assert first is not None and first.preferred_rank == 1
    assert second is not None and second.preferred_rank == 2


async def test_searches_see_imported_entries_thunderbird_style(
    managed_slapd: SlapdHandle, tmp_path: Path
) -> None:
    d = managed_slapd.directory()
    await d.start(manage=False)
    try:
        extract = tmp_path / "small.txt"
        write_sample(extract, 40)
        await import_extract(d, extract)
        conn = ldap.initialize(managed_slapd.layout.ldaps_url)
        conn.set_option(ldap.OPT_X_TLS_CACERTFILE, str(managed_slapd.ca_file))
        conn.set_option(ldap.OPT_X_TLS_NEWCTX, 0)
        await d.publish(DirectoryEntry(address="reader@mssante.test", surname="Reader",
                                       password_hashes=(await _hash("pw"),)))
        conn.simple_bind_s(f"mail=reader@mssante.test,ou=people,{managed_slapd.base_dn}", "pw")
        flt = "(|(cn=*bernard*)(mail=*bernard*)(sn=*bernard*)(givenName=*bernard*))"
        found = conn.search_s(managed_slapd.base_dn, ldap.SCOPE_SUBTREE, flt,
                              ["cn", "mail", "o", "telephoneNumber", "l"])
        mails = sorted(a["mail"][0].decode() for _dn, a in found)
        assert mails and all("bernard" in m for m in mails)
        assert all(b"mssanteRowHash" not in a for _dn, a in found)
        conn.unbind_s()
    finally:
        await d.stop()


def test_extract_without_address_column_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "bad.txt"
    f.write_text("Nom|Prénom\nA|B\n", encoding="utf-8")
    with pytest.raises(ExtractError, match="no 'Adresse BAL' column.*columns found: Nom, Prénom"):
        read_extract(f)


def test_extract_not_utf8_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "latin1.txt"
    f.write_bytes(("Adresse BAL|Nom d'exercice\na@b.test|Hélène\n").encode("latin-1"))
    with pytest.raises(ExtractError, match="not UTF-8"):
        read_extract(f)


def test_extract_tolerates_reordered_unknown_and_missing_columns(tmp_path: Path) -> None:
    f = tmp_path / "few.txt"
    f.write_text("Colonne inconnue|nom d'exercice|ADRESSE BAL|Type BAL\n"
                 "x|Dupont|dupont@medecin.mssante.fr|per\n", encoding="utf-8")
    e = read_extract(f)
    assert e.ignored_columns == ["Colonne inconnue"]
    assert "Prénom d'exercice" in e.missing_columns and len(REAL_COLUMNS) == 31
    (r,) = e.rows.values()
    assert (r.entry.surname, r.entry.type, r.entry.origin) == ("Dupont", "PER", "national")


async def test_second_concurrent_import_is_refused(directory: Directory, tmp_path: Path) -> None:
    import fcntl

    assert directory.layout is not None
    f = tmp_path / "one.txt"
    write_sample(f, 5)
    with (directory.layout.root / "import.lock").open("a+") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        held.write("4242")
        held.flush()
        with pytest.raises(DirectoryError, match=r"another import .* is running \(pid 4242\)"):
            await import_extract(directory, f)
    assert (await import_extract(directory, f)).added == 5
