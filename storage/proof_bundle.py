"""Proof exports: what an auditor needs to check part of the ledger without the database.

An export is a directory::

    export.json        format, origin, time range, tree size the proofs are against
    records.jsonl      one record a line (the fields of docs/proofs.md, plus its hash)
    inclusion.jsonl    {"seq", "tree_size", "path": [base64 hash, …]} a line, one per record
    checkpoints/       every signed checkpoint note up to the newest (C2SP format)
    consistency.jsonl  {"old", "new", "proof": [base64 hash, …]} between successive checkpoints
    keys.txt           the ledger's verifier keys, one a line (<name>+<hex id>+<base64 key>)

:func:`verify_export` checks it with nothing else: every note's signature against
``keys.txt``, one root per tree size (no fork), each consistency proof between successive
checkpoints, each record's own hash and its link to the previous exported record, and each
record's inclusion proof against the signed root. A range export cannot show that records
*before* its first one exist; the inclusion proofs show that every exported one is in the
signed tree at the position its sequence number says.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from storage import merkle, notes, proofs
from storage.keys import Keyring
from storage.schema import proofs as proofs_table
from storage.types import canonical_json

FORMAT = "mssante-proof-export/1"


@dataclass
class ExportReport:
    records: int = 0
    checkpoints: int = 0
    tree_size: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def record_json(r: proofs.ProofRecord) -> dict[str, Any]:
    """A record as an export line: the hashed fields (docs/proofs.md) and its chain hash."""
    return {
        "seq": r.seq,
        "kind": r.kind,
        "created_at": r.created_at.astimezone(UTC).isoformat(timespec="microseconds"),
        "message_ref": r.message_ref,
        "content_sha256": r.content_sha256,
        "actor": r.actor,
        "details": r.details,
        "prev_hash": r.prev_hash,
        "hash": r.hash,
    }


def leaf_input(line: dict[str, Any]) -> bytes:
    """The bytes a record's leaf and chain hash are computed over: the canonical JSON of
    every field but ``hash`` (sorted keys, no spaces, UTF-8)."""
    doc = {k: v for k, v in line.items() if k != "hash"}
    return canonical_json(doc).encode()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def verifier_keys(keyring: Keyring, origin: str) -> list[str]:
    return [notes.verifier_key(origin, k) for k in proofs.public_keys(keyring)]


async def export(
    conn: AsyncConnection,
    keyring: Keyring,
    out: Path,
    *,
    origin: str,
    since: datetime | None = None,
    until: datetime | None = None,
) -> ExportReport:
    """Writes the records created in [since, until) with proofs against the newest
    checkpoint (sign one first so that every record is covered)."""
    signed = await proofs.checkpoints(conn)
    report = ExportReport(checkpoints=len(signed))
    if not signed:
        raise ValueError("the ledger has no signed checkpoint yet; run mssante proofs checkpoint")
    newest = signed[-1]
    report.tree_size = newest.size
    _write_notes(out, signed)
    with (out / "consistency.jsonl").open("w", encoding="utf-8") as fh:
        for old, new in zip(signed, signed[1:], strict=False):
            proof = await proofs.consistency_proof(conn, old.size, new.size)
            fh.write(json.dumps({"old": old.size, "new": new.size,
                                 "proof": [b64(h) for h in proof]}) + "\n")
    query = select(proofs_table).where(proofs_table.c.seq <= newest.size)
    if since is not None:
        query = query.where(proofs_table.c.created_at >= since)
    if until is not None:
        query = query.where(proofs_table.c.created_at < until)
    after = 0
    with (out / "records.jsonl").open("w", encoding="utf-8") as rec, \
            (out / "inclusion.jsonl").open("w", encoding="utf-8") as inc:
        while True:
            rows = (await conn.execute(
                query.where(proofs_table.c.seq > after).order_by(proofs_table.c.seq).limit(1000)
            )).all()
            if not rows:
                break
            for row in rows:
                r = proofs.record_from_row(row)
                rec.write(json.dumps(record_json(r), ensure_ascii=False) + "\n")
                path = await proofs.inclusion_proof(conn, r.seq, newest.size)
                inc.write(json.dumps({"seq": r.seq, "tree_size": newest.size,
                                      "path": [b64(h) for h in path]}) + "\n")
                report.records += 1
                after = r.seq
    manifest = {
        "format": FORMAT, "origin": newest.origin, "tree_size": newest.size,
        "from": since.isoformat() if since else None, "to": until.isoformat() if until else None,
        "records": report.records,
    }
    _write_text(out / "keys.txt", "\n".join(verifier_keys(keyring, newest.origin)) + "\n")
    _write_text(out / "export.json", json.dumps(manifest, indent=2) + "\n")
    return report


def _write_notes(out: Path, signed: list[notes.Checkpoint]) -> None:
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    for cp in signed:
        _write_text(out / "checkpoints" / f"{cp.size:020d}.note", cp.text)


def _write_text(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def _lines(path: Path, report: ExportReport) -> Iterable[tuple[int, dict[str, Any]]]:
    try:
        with path.open(encoding="utf-8") as fh:
            for n, line in enumerate(fh, start=1):
                try:
                    yield n, json.loads(line)
                except ValueError:
                    report.problems.append(f"{path.name} line {n}: not JSON")
    except OSError as exc:
        report.problems.append(f"{path.name}: cannot be read ({exc.strerror})")


def load_keys(path: Path) -> list[Any]:
    keys = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            keys.append(notes.parse_verifier_key(line)[1])
    return keys


def verify_signed(
    report: ExportReport, texts: Iterable[tuple[str, str]], keys: list[Any]
) -> dict[int, notes.Checkpoint]:
    """Checks each note's signature and that no tree size has two roots; by size."""
    by_size: dict[int, notes.Checkpoint] = {}
    for what, text in texts:
        try:
            cp = notes.parse(text)
        except notes.NoteError as exc:
            report.problems.append(f"{what}: malformed ({exc})")
            continue
        if notes.verified_by(cp, keys) is None:
            report.problems.append(f"{what}: not signed by the ledger's keys")
            continue
        report.checkpoints += 1
        seen = by_size.get(cp.size)
        if seen is not None and seen.root != cp.root:
            report.problems.append(
                f"fork at tree size {cp.size}: two signed checkpoints with different roots"
            )
        by_size.setdefault(cp.size, cp)
    return by_size


def verify_export(directory: Path) -> ExportReport:
    """Everything :func:`export` wrote, checked without a database (see the module doc)."""
    report = ExportReport()
    try:
        keys = load_keys(directory / "keys.txt")
    except (OSError, notes.NoteError) as exc:
        report.problems.append(f"keys.txt: {exc}")
        return report
    note_files = sorted((directory / "checkpoints").glob("*.note"))
    signed = verify_signed(
        report, ((f"checkpoint {p.name}", p.read_text(encoding="utf-8")) for p in note_files),
        keys,
    )
    sizes = sorted(signed)
    report.tree_size = sizes[-1] if sizes else 0
    proved = set()
    for n, doc in _lines(directory / "consistency.jsonl", report):
        try:
            old, new = signed[doc["old"]], signed[doc["new"]]
            proof = [unb64(h) for h in doc["proof"]]
        except (KeyError, TypeError, binascii.Error):
            report.problems.append(f"consistency.jsonl line {n}: names no signed checkpoint")
            continue
        if merkle.verify_consistency(old.size, new.size, old.root, new.root, proof):
            proved.add((old.size, new.size))
        else:
            report.problems.append(
                f"checkpoints {old.size} and {new.size} are not consistent: the tree of "
                f"{new.size} records does not extend the tree of {old.size} records"
            )
    for old_size, new_size in zip(sizes, sizes[1:], strict=False):
        if (old_size, new_size) not in proved and not any(
            p.startswith(f"checkpoints {old_size} and {new_size}") for p in report.problems
        ):
            report.problems.append(
                f"checkpoints {old_size} and {new_size}: no consistency proof in the export"
            )
    paths: dict[int, dict[str, Any]] = {
        int(doc.get("seq", 0)): doc for _, doc in _lines(directory / "inclusion.jsonl", report)
    }
    prev: dict[str, Any] | None = None
    for n, line in _lines(directory / "records.jsonl", report):
        report.records += 1
        seq = line.get("seq")
        if not isinstance(seq, int):
            report.problems.append(f"records.jsonl line {n}: no sequence number")
            continue
        check_record(report, line, prev, paths.get(seq), signed)
        prev = line
    if report.records == 0:
        report.problems.append("the export holds no record")
    return report


def check_record(
    report: ExportReport,
    line: dict[str, Any],
    prev: dict[str, Any] | None,
    inclusion: dict[str, Any] | None,
    signed: dict[int, notes.Checkpoint],
) -> None:
    """One exported record: its hash, its link to the previous one, its inclusion proof."""
    seq = line["seq"]
    data = leaf_input(line)
    if hashlib.sha256(data).hexdigest() != line.get("hash"):
        report.problems.append(f"record {seq}: content does not match its hash (the record "
                               "was changed)")
    if prev is not None:
        if seq != prev["seq"] + 1 and seq > prev["seq"]:
            report.problems.append(
                f"records {prev['seq'] + 1}..{seq - 1} are missing from the export"
            )
        elif seq <= prev["seq"]:
            report.problems.append(f"record {seq} is out of sequence")
        elif line.get("prev_hash") != prev.get("hash"):
            report.problems.append(f"record {seq}: previous-hash link broken")
    elif seq == 1 and line.get("prev_hash") != proofs.GENESIS:
        report.problems.append("record 1: previous-hash link broken")
    if inclusion is None:
        report.problems.append(f"record {seq}: no inclusion proof in the export")
        return
    cp = signed.get(inclusion.get("tree_size", -1))
    if cp is None:
        report.problems.append(
            f"record {seq}: its inclusion proof names tree size {inclusion.get('tree_size')}, "
            "which no signed checkpoint of the export has"
        )
        return
    try:
        path = [unb64(h) for h in inclusion["path"]]
    except (KeyError, TypeError, binascii.Error):
        path = []
    if not merkle.verify_inclusion(seq - 1, cp.size, merkle.leaf_hash(data), path, cp.root):
        report.problems.append(
            f"record {seq}: not in the signed tree of {cp.size} records (its inclusion proof "
            "fails: the record or the proof was changed)"
        )
