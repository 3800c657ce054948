"""One message can be followed through the logs and proofs: the SMTP session, the stored
message, its queue rows, the outbound attempts and the proofs name each other."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from pathlib import Path

import aiosmtplib
import pytest

from tests.fixtures.gateway import free_port, gateway_settings, running_gateway

PEER = "hopital-b.mssante.test"


async def test_session_message_queue_and_attempts_are_tied(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    closed_port = free_port()  # nothing listens: the attempt is deferred
    settings = gateway_settings(tmp_path / "gw", trusted=(PEER,),
                                transport={PEER: f"127.0.0.1:{closed_port}"})
    async with running_gateway(settings) as gw:
        raw = (f"From: {gw.demo_address}\r\nTo: bob@{PEER}\r\nSubject: suivi\r\n"
               "Message-ID: <suivi@mssante.test>\r\n\r\nbonjour\r\n")
        await aiosmtplib.send(raw, sender=gw.demo_address, recipients=[f"bob@{PEER}"],
                              hostname="127.0.0.1", port=gw.submission_port, start_tls=True,
                              tls_context=gw.client_context(), username=gw.demo_address,
                              password=gw.demo_password)
        [stored] = [r.getMessage() for r in caplog.records
                    if r.getMessage().startswith("event=smtp_stored")]
        fields = dict(re.findall(r"(\w+)=(\S+)", stored))
        [queue_row] = await gw.queue_rows()
        assert fields["queue"] == str(queue_row["id"])
        assert fields["message"] == str(queue_row["message_id"])
        [submitted] = [p for p in await gw.proofs_for("<suivi@mssante.test>")
                       if p["kind"] == "submitted"]
        details = json.loads(submitted["details"])
        assert details["session"] == fields["session"] and details["smtp_id"] == fields["id"]

        for _ in range(150):
            attempts = [r for r in caplog.records if r.getMessage() == "outbound_deferred"]
            if attempts:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("no outbound attempt was logged")
        attempt = attempts[0].fields  # type: ignore[attr-defined]
        assert attempt["queue_id"] == queue_row["id"]
        assert attempt["message"] == queue_row["message_id"]
