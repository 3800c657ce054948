"""``mssante proofs export`` and ``proofs verify --offline``: an auditor's copy, no database."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

from tests.gateway.test_proofs_cli import cli, seed
from tests.storage import rfc9162


def _export(tmp_path: Path) -> Path:
    asyncio.run(seed(tmp_path))
    asyncio.run(seed(tmp_path))  # 6 records
    out = tmp_path / "audit"
    done = cli(tmp_path, "proofs", "export", "--from", "2000-01-01", "--to", "2999-12-31",
               "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "exported 6 records with inclusion proofs against tree size 6" in done.stdout
    return out


def offline(out: Path) -> tuple[int, str]:
    # No MSSANTE_HOME pointing at the data: --offline reads the directory only.
    done = cli(out.parent / "nowhere", "proofs", "verify", "--offline", str(out))
    return done.returncode, done.stdout + done.stderr


def test_export_verifies_offline_and_independently(tmp_path: Path) -> None:
    out = _export(tmp_path)
    code, text = offline(out)
    assert code == 0 and "export verified" in text, text
    assert not (out.parent / "nowhere" / "mssante.db").exists()
    # The same check from the documented definitions only (docs/proofs.md).
    lines = [json.loads(x) for x in (out / "records.jsonl").read_text().splitlines()]
    paths = [json.loads(x) for x in (out / "inclusion.jsonl").read_text().splitlines()]
    note = (out / "checkpoints" / f"{6:020d}.note").read_text().splitlines()
    import base64

    root = base64.b64decode(note[2])
    for line, inc in zip(lines, paths, strict=True):
        data = json.dumps({k: v for k, v in line.items() if k != "hash"}, sort_keys=True,
                          separators=(",", ":"), ensure_ascii=False).encode()
        path = [base64.b64decode(h) for h in inc["path"]]
        assert rfc9162.verify_inclusion(line["seq"] - 1, 6, data, path, root)


def test_tampered_exports_are_named(tmp_path: Path) -> None:
    out = _export(tmp_path)

    def variant(name: str) -> Path:
        copy = tmp_path / name
        shutil.copytree(out, copy)
        return copy

    changed = variant("changed")
    recs = (changed / "records.jsonl").read_text().splitlines()
    recs[1] = recs[1].replace("demo@mssante.test", "other@mssante.test")
    (changed / "records.jsonl").write_text("\n".join(recs) + "\n")
    code, text = offline(changed)
    assert code == 1
    assert "record 2: content does not match its hash (the record was changed)" in text
    assert "record 2: not in the signed tree of 6 records" in text

    dropped = variant("dropped")
    (dropped / "records.jsonl").write_text("\n".join(recs[:2] + recs[3:]) + "\n")
    code, text = offline(dropped)
    assert code == 1 and "records 3..3 are missing from the export" in text

    forged = variant("forged")
    note = forged / "checkpoints" / f"{6:020d}.note"
    lines = note.read_text().split("\n")
    lines[2] = "A" * 43 + "="
    note.write_text("\n".join(lines))
    code, text = offline(forged)
    assert code == 1
    assert f"checkpoint {6:020d}.note: not signed by the ledger's keys" in text


def test_export_refusals(tmp_path: Path) -> None:
    asyncio.run(seed(tmp_path))
    bad = cli(tmp_path, "proofs", "export", "--from", "yesterday", "--out", str(tmp_path / "x"))
    assert bad.returncode == 2 and "'yesterday' is not a date" in bad.stderr
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f").write_text("x")
    busy = cli(tmp_path, "proofs", "export", "--out", str(tmp_path / "full"))
    assert busy.returncode == 2 and "is not empty" in busy.stderr
    code, text = offline(tmp_path / "missing")
    assert code == 2 and "is not a proof export" in text
