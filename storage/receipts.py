"""Receipts ("accusés de réception"): one message's proofs, checkable by anyone, offline.

A receipt is a JSON document a professional keeps or hands over: who sent the message, to
whom, when it was submitted, delivered (or relayed) and read, the SHA-256 of its content,
and underneath the proof records themselves, each with its inclusion proof in the Merkle
tree, the signed checkpoint of that tree and the operator's verifier key. The summary is
derived from the records, so :func:`verify_receipt` recomputes it and a summary edited
without the records is caught. The webmail and the portal offer the same document through
:func:`build_receipt`.

The key inside a receipt only shows which key signed; a verifier who wants to know it is the
operator's compares it with the key the operator publishes (``--key``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from storage import notes, proof_bundle, proofs
from storage.keys import Keyring

FORMAT = "mssante-receipt/1"
_MESSAGE_LEVEL = ("submitted", "received")  # about the message, whichever the recipient


class NoProofs(LookupError):
    """No record names this message (or this recipient of it)."""


@dataclass
class ReceiptReport:
    records: int = 0
    key_pinned: bool = False
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def summarise(records: list[dict[str, Any]], recipient: str | None) -> dict[str, Any]:
    """The human part of a receipt, from its records only."""
    def first(*kinds: str) -> dict[str, Any] | None:
        return next((r for r in records if r["kind"] in kinds), None)

    submitted = first("submitted", "received")
    delivered = first("delivered", "relayed")
    read = first("read")
    recipients = sorted({r["actor"] for r in records
                         if r["kind"] not in _MESSAGE_LEVEL and r.get("actor")})
    return {
        "message_id": records[0]["message_ref"],
        "sender": submitted["actor"] if submitted else None,
        "recipient": recipient,
        "recipients": recipients,
        "content_sha256": next((r["content_sha256"] for r in records
                                if r.get("content_sha256")), None),
        "submitted_at": submitted["created_at"] if submitted else None,
        "delivered_at": delivered["created_at"] if delivered else None,
        "delivered_how": delivered["kind"] if delivered else None,
        "read_at": read["created_at"] if read else None,
        "events": [
            {"seq": r["seq"], "time": r["created_at"], "kind": r["kind"],
             "etsi_evidence": proofs.ETSI_EVIDENCE.get(r["kind"]), "actor": r["actor"]}
            for r in records
        ],
    }


async def build_receipt(
    conn: AsyncConnection,
    keyring: Keyring,
    message_ref: str,
    *,
    recipient: str | None = None,
) -> dict[str, Any]:
    """The receipt of ``message_ref`` (optionally for one recipient), against the newest
    signed checkpoint; sign one first (:func:`storage.proofs.checkpoint`) so it covers all."""
    records = await proofs.get_by_message(conn, message_ref)
    if recipient is not None:
        wanted = recipient.lower()
        records = [r for r in records
                   if r.kind in _MESSAGE_LEVEL or (r.actor or "").lower() == wanted]
        if not any(r.kind not in _MESSAGE_LEVEL for r in records):
            raise NoProofs(f"no proof names {recipient} as a recipient of {message_ref}")
    if not records:
        raise NoProofs(f"no proof names message {message_ref}")
    cp = await proofs.newest_checkpoint(conn)
    if cp is None or cp.size < records[-1].seq:
        raise NoProofs(
            f"record {records[-1].seq} is not covered by a signed checkpoint yet; "
            "run mssante proofs checkpoint"
        )
    lines = [proof_bundle.record_json(r) for r in records]
    inclusion = []
    for r in records:
        path = await proofs.inclusion_proof(conn, r.seq, cp.size)
        inclusion.append({"seq": r.seq, "tree_size": cp.size,
                          "path": [proof_bundle.b64(h) for h in path]})
    return {
        "format": FORMAT,
        "summary": summarise(lines, recipient),
        "records": lines,
        "inclusion": inclusion,
        "checkpoint": cp.text,
        "keys": proof_bundle.verifier_keys(keyring, cp.origin),
    }


def verify_receipt(doc: dict[str, Any], pinned_keys: list[str] | None = None) -> ReceiptReport:
    """Checks a receipt with nothing else: checkpoint signature, each record's hash and
    inclusion proof, and the summary against the records."""
    report = ReceiptReport(key_pinned=bool(pinned_keys))
    if doc.get("format") != FORMAT:
        report.problems.append(f"not a receipt (format {doc.get('format')!r}, expected {FORMAT})")
        return report
    try:
        keys = [notes.parse_verifier_key(k)[1] for k in (pinned_keys or doc.get("keys", []))]
    except notes.NoteError as exc:
        report.problems.append(str(exc))
        return report
    bundle = proof_bundle.ExportReport()
    signed = proof_bundle.verify_signed(bundle, [("checkpoint", str(doc.get("checkpoint")))],
                                        keys)
    paths = {int(i.get("seq", 0)): i for i in doc.get("inclusion", [])}
    records = doc.get("records") or []
    for line in records:
        report.records += 1
        proof_bundle.check_record(bundle, line, None, paths.get(line.get("seq")), signed)
    report.problems.extend(bundle.problems)
    if not records:
        report.problems.append("the receipt holds no record")
    elif doc.get("summary") != summarise(records, (doc.get("summary") or {}).get("recipient")):
        report.problems.append(
            "the summary does not match the records (it was edited after the receipt was made)"
        )
    return report


def render_html(doc: dict[str, Any]) -> str:
    """A printable page: the summary in words, then the receipt's JSON for verification."""
    import html
    import json

    s = doc["summary"]
    rows = "".join(
        f"<tr><td>{html.escape(e['time'])}</td><td>{html.escape(e['kind'])}</td>"
        f"<td>{html.escape(e['etsi_evidence'] or '')}</td>"
        f"<td>{html.escape(e['actor'] or '')}</td><td>#{e['seq']}</td></tr>"
        for e in s["events"]
    )

    def v(key: str) -> str:
        return html.escape(str(s.get(key) or "—"))

    return (
        "<!doctype html><html lang=\"fr\"><meta charset=\"utf-8\">"
        f"<title>Accusé de réception {v('message_id')}</title>"
        "<h1>Accusé de réception</h1><dl>"
        f"<dt>Message</dt><dd>{v('message_id')}</dd>"
        f"<dt>Expéditeur</dt><dd>{v('sender')}</dd>"
        f"<dt>Destinataire(s)</dt><dd>{html.escape(', '.join(s['recipients']) or '—')}</dd>"
        f"<dt>Dépôt</dt><dd>{v('submitted_at')}</dd>"
        f"<dt>Remise</dt><dd>{v('delivered_at')}</dd>"
        f"<dt>Lecture</dt><dd>{v('read_at')}</dd>"
        f"<dt>Empreinte SHA-256 du contenu</dt><dd><code>{v('content_sha256')}</code></dd>"
        "</dl><table><tr><th>Heure (UTC)</th><th>Événement</th><th>ETSI EN 319 522-2</th>"
        f"<th>Acteur</th><th>Preuve</th></tr>{rows}</table>"
        "<h2>Preuve vérifiable</h2><p>mssante proofs verify-receipt FICHIER.json, ou la "
        "procédure de docs/proofs.md, sur le document ci-dessous.</p>"
        f"<pre>{html.escape(json.dumps(doc, indent=2, ensure_ascii=False))}</pre></html>\n"
    )


def write(doc: dict[str, Any], out: Path) -> None:
    """Writes the receipt as JSON, or as a printable HTML page or PDF when ``out`` ends in
    .html or .pdf (the PDF carries the JSON as an embedded file)."""
    import json

    if out.suffix.lower() == ".pdf":
        from storage.receipt_pdf import render_pdf

        out.write_bytes(render_pdf(doc))
    elif out.suffix.lower() == ".html":
        out.write_text(render_html(doc), encoding="utf-8")
    else:
        out.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
