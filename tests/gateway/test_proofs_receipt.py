"""``mssante proofs receipt`` and ``verify-receipt``: a message's proofs, checked offline."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from storage import notes
from tests.gateway.test_proofs_cli import cli, seed
from tests.storage import rfc9162


def _receipt(tmp_path: Path, suffix: str = ".json", *extra: str) -> Path:
    asyncio.run(seed(tmp_path))
    out = tmp_path / f"receipt{suffix}"
    done = cli(tmp_path, "proofs", "receipt", "m1@mssante.test", *extra, "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "receipt for <m1@mssante.test>: 3 records" in done.stdout
    return out


def _check(path: Path, *keys: str) -> tuple[int, str]:
    args = [a for k in keys for a in ("--key", k)]
    done = cli(path.parent / "nowhere", "proofs", "verify-receipt", str(path), *args)
    return done.returncode, done.stdout + done.stderr


def test_receipt_verifies_offline(tmp_path: Path) -> None:
    out = _receipt(tmp_path, ".json", "--recipient", "demo@mssante.test")
    doc = json.loads(out.read_text())
    s = doc["summary"]
    assert s["sender"] == "demo@mssante.test" and s["content_sha256"] == "ab" * 32
    assert s["submitted_at"] and s["delivered_at"] and s["read_at"]
    assert [e["etsi_evidence"] for e in s["events"]] == [
        "SubmissionAcceptance", "ContentConsignment", "ContentHandover"]
    code, text = _check(out)
    assert code == 0 and "receipt verified: 3 records of <m1@mssante.test>" in text, text
    assert "compare it with the operator's published key" in text
    code, text = _check(out, doc["keys"][0])
    assert code == 0 and "published key" not in text

    # independently: the documented leaf bytes, RFC 9162 verification, the note's root
    root = base64.b64decode(doc["checkpoint"].split("\n")[2])
    size = int(doc["checkpoint"].split("\n")[1])
    for line, inc in zip(doc["records"], doc["inclusion"], strict=True):
        data = json.dumps({k: v for k, v in line.items() if k != "hash"}, sort_keys=True,
                          separators=(",", ":"), ensure_ascii=False).encode()
        path = [base64.b64decode(h) for h in inc["path"]]
        assert rfc9162.verify_inclusion(line["seq"] - 1, size, data, path, root)


def test_tampered_receipts_are_named(tmp_path: Path) -> None:
    out = _receipt(tmp_path)
    doc = json.loads(out.read_text())

    def variant(name: str, change: dict[str, object]) -> Path:
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(change))
        return path

    edited = json.loads(json.dumps(doc))
    edited["summary"]["read_at"] = None
    code, text = _check(variant("summary", edited))
    assert code == 1 and "the summary does not match the records" in text

    edited = json.loads(json.dumps(doc))
    edited["records"][2]["created_at"] = "2026-01-01T00:00:00.000000+00:00"
    code, text = _check(variant("record", edited))
    assert code == 1
    assert "record 3: content does not match its hash (the record was changed)" in text

    other = notes.verifier_key("mx.mssante.test/proofs", Ed25519PrivateKey.generate()
                               .public_key())
    code, text = _check(out, other)
    assert code == 1 and "checkpoint: not signed by the ledger's keys" in text


def test_printable_receipt_and_refusals(tmp_path: Path) -> None:
    page = _receipt(tmp_path, ".html").read_text()
    assert "Accusé de réception" in page and "&lt;m1@mssante.test&gt;" in page
    nobody = cli(tmp_path, "proofs", "receipt", "<nope@x.test>", "--out", str(tmp_path / "r.json"))
    assert nobody.returncode == 2 and "no proof names message <nope@x.test>" in nobody.stderr
    stranger = cli(tmp_path, "proofs", "receipt", "m1@mssante.test", "--recipient",
                   "who@else.test", "--out", str(tmp_path / "r.json"))
    assert stranger.returncode == 2 and "no proof names who@else.test" in stranger.stderr
    odt = cli(tmp_path, "proofs", "receipt", "m1@mssante.test", "--out", str(tmp_path / "r.odt"))
    assert odt.returncode == 2 and "must end in .json, .html or .pdf" in odt.stderr
    junk = tmp_path / "junk.json"
    junk.write_text("{")
    code, text = _check(junk)
    assert code == 2 and "is not a readable JSON receipt" in text


def test_pdf_receipt_names_parties_and_sha256(tmp_path: Path) -> None:
    """The PDF read back with pypdf: both parties, the content SHA-256, and the JSON
    receipt embedded in it verifies."""
    import pypdf

    out = _receipt(tmp_path, ".pdf", "--recipient", "demo@mssante.test")
    reader = pypdf.PdfReader(out)
    text = "".join(page.extract_text() for page in reader.pages)
    assert "Accusé de réception" in text and "<m1@mssante.test>" in text
    assert "Expéditeur demo@mssante.test" in text
    assert "Destinataire demo@mssante.test" in text
    assert "ab" * 32 in text
    embedded = reader.attachments["accuse-de-reception.json"][0]
    inner = tmp_path / "inner.json"
    inner.write_bytes(embedded)
    code, checked = _check(inner)
    assert code == 0 and "receipt verified: 3 records" in checked, checked
