"""``mssante proofs show``: the whole story of a message in order, as text and as JSON.

Before: one raw line per record (kind, actor, JSON details), with no sentence saying who
submitted for whom, and no ``--json`` for machines.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from config import load_settings
from storage import proofs
from storage.database import open_database

MSSANTE = str(Path(sys.executable).with_name("mssante"))
REF = "<story@mssante.test>"
SHA = "cd" * 32
SECRETARY = "secretariat@mssante.test"
DOCTOR = "dr.martin@mssante.test"
PEER = "bob@hopital-b.mssante.test"

STEPS: list[tuple[str, str | None, dict[str, Any]]] = [
    ("submitted", SECRETARY, {"login": SECRETARY, "method": "PLAIN", "client_ip": "10.0.0.5",
                              "recipients": [PEER], "on_behalf_of": [DOCTOR],
                              "sender_field_added": True}),
    ("relayed", PEER, {"recipient": PEER, "remote_host": "mx.hopital-b.mssante.test",
                       "reply": "250 2.0.0 Ok", "tls_version": "TLSv1.3"}),
    ("dsn-received", "dns;mx.hopital-b.mssante.test", {
        "reporter": "dns;mx.hopital-b.mssante.test", "mailboxes": [DOCTOR],
        "recipients": [{"action": "delivered", "status": "2.0.0",
                        "final_recipient": f"rfc822;{PEER}"}]}),
    ("mdn-received", PEER, {"recipients": [{
        "disposition": "automatic-action/MDN-sent-automatically; displayed"}]}),
    ("purged", None, {"reason": "retention period ended"}),
]


def cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MSSANTE_")}
    env["MSSANTE_HOME"] = str(data_dir)
    return subprocess.run([MSSANTE, *args], env=env, capture_output=True, text=True, timeout=60)


async def seed(data_dir: Path) -> None:
    db = await open_database(load_settings(data_dir=data_dir, env={}), may_create_key=True)
    async with db.begin() as conn:
        await proofs.append(conn, kind="submitted", message_ref="<other@mssante.test>")
        for kind, actor, details in STEPS:
            await proofs.append(conn, kind=kind, message_ref=REF, content_sha256=SHA,
                                actor=actor, details=details)
    await db.close()


def test_show_tells_the_story_in_order_and_as_json(tmp_path: Path) -> None:
    asyncio.run(seed(tmp_path))
    shown = cli(tmp_path, "proofs", "show", "story@mssante.test")
    assert shown.returncode == 0, shown.stderr
    heading, *lines = shown.stdout.splitlines()
    assert heading == f"{REF}: 5 proof(s), content SHA-256 {SHA}"
    assert [line.split()[2] for line in lines] == [k for k, _, _ in STEPS]
    assert lines[0].endswith(f"submitted by {SECRETARY} for {DOCTOR} (delegated, Sender "
                             f"field added) with PLAIN from 10.0.0.5, to {PEER}")
    assert lines[1].endswith(f"relayed to {PEER} via mx.hopital-b.mssante.test (TLSv1.3): "
                             "250 2.0.0 Ok")
    assert lines[2].endswith("delivery report received from dns;mx.hopital-b.mssante.test: "
                             f"delivered for {PEER} (2.0.0)")
    assert lines[3].endswith(f"read receipt received from {PEER}: "
                             "automatic-action/MDN-sent-automatically; displayed")
    assert lines[4].endswith("body purged (retention period ended)")

    as_json = cli(tmp_path, "proofs", "show", REF, "--json")
    assert as_json.returncode == 0, as_json.stderr
    story = json.loads(as_json.stdout)
    assert story["message_id"] == REF and story["content_sha256"] == [SHA]
    events = story["events"]
    assert [e["kind"] for e in events] == [k for k, _, _ in STEPS]
    assert [e["seq"] for e in events] == [2, 3, 4, 5, 6]
    assert events[0]["details"]["on_behalf_of"] == [DOCTOR]
    assert all(e["time"].endswith("Z") and len(e["hash"]) == 64 for e in events)
