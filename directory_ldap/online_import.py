"""Import of the national extract over LDAP, for an external directory server.

(The managed slapd uses :mod:`directory_ldap.bulk_import`, which builds a new generation
offline and switches atomically.) The import compares the file with what the directory
holds now (address + row digest of every national entry) and applies only the differences:
adds, updates, deletes. Writes go in batches, pipelined on several connections. Because the
comparison is made against the directory itself, an import interrupted half-way (crash, kill)
is completed by running it again: the journal file left behind says so, and the second run
applies exactly what is missing. Local mailboxes (other branches) are never touched.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ldap
import ldap.dn
import ldap.modlist

from directory_ldap import generations
from directory_ldap import layout as tree
from directory_ldap.entry import TEXT_ATTRIBUTES
from directory_ldap.extract import Extract, ParsedRow
from directory_ldap.folding import FOLDED_ATTRIBUTES
from directory_ldap.import_summary import ImportSummary, Progress
from directory_ldap.queries import search_paged
from directory_ldap.service import Directory

log = logging.getLogger("mssante.directory.import")

BATCH_SIZE = 500
# Attributes an update rewrites (replace with no value deletes, RFC 4511 §4.6).
MANAGED_ATTRIBUTES = (
    "cn", "o", "mssanteMailboxType", "mssanteListeRouge", "mssantePreferredRank",
    "mssanteRowHash", *[a for a in TEXT_ATTRIBUTES.values()], *FOLDED_ATTRIBUTES.values(),
)

@dataclass(frozen=True)
class _Op:
    kind: str  # add | update | delete
    dn: str
    row: ParsedRow | None = None


def journal_path(directory: Directory) -> Path:
    """Present while an online import runs; left behind, it says the next run resumes."""
    return directory.settings.data_dir / "directory" / "import.journal"


def _apply_batch(base: str, ops: list[_Op], conn: Any) -> list[tuple[str, str]]:
    """Sends every operation of the batch, then reads the answers (pipelining)."""
    pending: list[tuple[int, _Op]] = []
    for op in ops:
        if op.kind == "delete":
            msgid = conn.delete_ext(op.dn)
        else:
            assert op.row is not None
            attrs = op.row.entry.to_ldap(row_hash=op.row.row_hash)
            if op.kind == "add":
                msgid = conn.add_ext(op.dn, ldap.modlist.addModlist(attrs))
            else:
                mods = [(ldap.MOD_REPLACE, a, attrs.get(a)) for a in MANAGED_ATTRIBUTES]
                msgid = conn.modify_ext(op.dn, mods)
        pending.append((msgid, op))
    failed: list[tuple[str, str]] = []
    for msgid, op in pending:
        try:
            conn.result3(msgid)
        except ldap.ALREADY_EXISTS:
            # resumed import: the entry arrived in an earlier, interrupted run
            assert op.row is not None
            attrs = op.row.entry.to_ldap(row_hash=op.row.row_hash)
            conn.modify_s(op.dn, [(ldap.MOD_REPLACE, a, attrs.get(a)) for a in MANAGED_ATTRIBUTES])
        except ldap.NO_SUCH_OBJECT:
            if op.kind != "delete":
                failed.append((op.dn, "no such entry"))
        except ldap.LDAPError as exc:
            info = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
            failed.append((op.dn, str(info.get("desc", exc)) + " " + str(info.get("info", ""))))
    return failed


def national_digests(base: str, conn: Any) -> dict[str, tuple[str, str]]:
    """lower-case address → (dn, row digest) of every national entry now in the directory."""
    branch = tree.branch_dn(base, tree.NATIONAL_BRANCH)
    out: dict[str, tuple[str, str]] = {}
    for dn, attrs in search_paged(conn, branch, "(objectClass=mssanteMailbox)",
                                  ["mail", "mssanteMailUTF8", "mssanteRowHash"]):
        # an internationalised address is named by its UTF-8 form (addresses.py)
        mail = (attrs.get("mssanteMailUTF8") or attrs.get("mail") or [b""])[0].decode()
        digest = attrs.get("mssanteRowHash", [b""])[0].decode()
        out[mail.lower()] = (dn, digest)
    return out


async def import_online(
    directory: Directory, path: Path, extract: Extract, progress: Progress | None = None,
) -> ImportSummary:
    """Applies the differences between ``extract`` and the national branch, entry by entry."""
    started = time.monotonic()
    summary = ImportSummary(
        file=str(path), rows=len(extract.rows), bad=extract.bad,
        used_columns=extract.used_columns, ignored_columns=extract.ignored_columns,
        missing_columns=extract.missing_columns,
    )
    summary.note_addresses(extract)
    base = directory.base_dn
    journal = journal_path(directory)
    summary.resumed = await asyncio.to_thread(journal.exists)
    if summary.resumed:
        log.warning("event=directory_import_resume journal=%s", journal)
    current = await directory.pool.run(lambda conn: national_digests(base, conn))

    ops: list[_Op] = []
    for low, row in extract.rows.items():
        have = current.get(low)
        if have is None:
            ops.append(_Op("add", tree.national_dn(base, row.entry.address), row))
        elif have[1] != row.row_hash:
            ops.append(_Op("update", have[0], row))
        else:
            summary.unchanged += 1
    for low, (dn, _h) in current.items():
        if low not in extract.rows:
            ops.append(_Op("delete", dn))
            summary.note_deleted(ldap.dn.str2dn(dn)[0][0][1])
    summary.added = sum(1 for o in ops if o.kind == "add")
    summary.updated = sum(1 for o in ops if o.kind == "update")

    if ops:
        if directory.layout is not None:
            # the managed slapd's generation no longer matches its manifest and labels: the
            # next generation import compares against slapd, searches use substrings
            await asyncio.to_thread(_forget_manifest, directory)
        await asyncio.to_thread(_write_journal, journal, path, summary)
        batches = [ops[i:i + BATCH_SIZE] for i in range(0, len(ops), BATCH_SIZE)]
        done = 0
        limit = asyncio.Semaphore(directory.pool.workers)

        async def run(batch: list[_Op]) -> list[tuple[str, str]]:
            async with limit:
                return await directory.pool.run(lambda conn: _apply_batch(base, batch, conn))

        for fut in asyncio.as_completed([run(b) for b in batches]):
            failed = await fut
            summary.failed.extend(failed)
            done += BATCH_SIZE
            if progress is not None:
                progress(min(done, len(ops)), len(ops))
    if not summary.failed:
        await asyncio.to_thread(journal.unlink, missing_ok=True)
    summary.seconds = time.monotonic() - started
    log.info(
        "event=directory_import mode=online file=%s rows=%d added=%d updated=%d deleted=%d "
        "unchanged=%d bad=%d failed=%d seconds=%.1f", path, summary.rows, summary.added,
        summary.updated, summary.deleted, summary.unchanged, len(summary.bad), len(summary.failed),
        summary.seconds,
    )
    return summary


def _write_journal(journal: Path, path: Path, summary: ImportSummary) -> None:
    journal.parent.mkdir(parents=True, exist_ok=True)
    tmp = journal.with_suffix(".tmp")
    tmp.write_text(json.dumps({
        "file": str(path), "started": time.time(), "add": summary.added,
        "update": summary.updated, "delete": summary.deleted,
    }))
    tmp.replace(journal)


def _forget_manifest(directory: Directory) -> None:
    assert directory.layout is not None
    current = generations.current(directory.layout)
    if current is not None:
        (current / generations.MANIFEST).unlink(missing_ok=True)
        (current / generations.LABELS).unlink(missing_ok=True)
