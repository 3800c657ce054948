"""Checkpoints handed to witnesses: POSTed to a real local HTTPS server (certificate
verified, a refusal retried) and mailed through the system mail, not the relay."""

from __future__ import annotations

import asyncio
import email
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from accounts.notify import outbox_for
from mail.witness import WitnessRefused, hand_to_witnesses
from storage import notes, proofs
from storage.database import Database
from storage.keys import Keyring
from tests.fixtures.gateway import gateway_settings, running_gateway
from tests.fixtures.pki import DevPkiBundle
from trustspace.pki import IssuedFiles


@dataclass
class Witness:
    """A real HTTPS server on loopback: answers the first ``refuse`` POSTs with 503."""

    url: str
    received: list[str] = field(default_factory=list)
    refuse: int = 0
    attempts: int = 0


@pytest.fixture
def witness_server(dev_pki: DevPkiBundle) -> Iterator[Witness]:
    yield from _serve(dev_pki.peer_server)


@pytest.fixture
def untrusted_server(dev_pki: DevPkiBundle) -> Iterator[Witness]:
    yield from _serve(dev_pki.unknown_server)


def _serve(cert: IssuedFiles) -> Iterator[Witness]:
    state = Witness(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server hook
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            state.attempts += 1
            if state.attempts <= state.refuse:
                self.send_response(503)
                self.end_headers()
                return
            assert self.headers["Content-Type"] == "text/plain; charset=utf-8"
            state.received.append(body.decode("utf-8"))
            self.send_response(201)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert.chain_file, cert.key_file)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    state.url = f"https://127.0.0.1:{server.server_address[1]}/witness/checkpoints"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def _verified(note: str, keyring: Keyring, size: int) -> None:
    cp = notes.parse(note)
    assert cp.size == size
    assert notes.verified_by(cp, proofs.public_keys(keyring)) is not None


async def _signed(db: Database, n: int) -> int:
    async with db.begin() as conn:
        for i in range(n):
            await proofs.append(conn, kind="submitted", message_ref=f"<w{i}@x>",
                                content_sha256="0" * 64, actor=None, details={})
        size = await proofs.checkpoint(conn, db.keyring, origin=db.settings.proof_origin)
    assert size is not None
    return size


async def test_posted_retried_and_mailed(sqlite_database: Database, witness_server: Witness,
                                         dev_pki: DevPkiBundle) -> None:
    db = sqlite_database
    db.settings = replace(db.settings, proofs=replace(
        db.settings.proofs, witness_url=witness_server.url,
        witness_ca_file=str(dev_pki.ca_file), witness_address="witness@auditeur.example"))
    outbox = outbox_for(db.settings.data_dir, db.settings.primary_domain)
    size = await _signed(db, 3)
    witness_server.refuse = 1
    with pytest.raises(WitnessRefused, match="HTTP 503"):
        await hand_to_witnesses(db, db.settings, outbox)
    # The mail went out at the first try, through the outbox (system mail), once.
    [mail] = list((db.settings.data_dir / "outbox").glob("*.eml"))
    msg = email.message_from_bytes(mail.read_bytes())
    assert msg["To"] == "witness@auditeur.example"
    _verified(msg.get_payload(decode=True).decode(), db.keyring, size)
    handed = await hand_to_witnesses(db, db.settings, outbox)  # the retry
    assert handed.url == size and handed.mail is None
    [note] = witness_server.received
    _verified(note, db.keyring, size)
    # Nothing new: nothing sent again; a newer checkpoint is sent once.
    assert (await hand_to_witnesses(db, db.settings, outbox)).url is None
    newer = await _signed(db, 2)
    assert (await hand_to_witnesses(db, db.settings, outbox)).url == newer
    assert len(witness_server.received) == 2
    assert len(list((db.settings.data_dir / "outbox").glob("*.eml"))) == 2


async def test_certificate_is_verified(sqlite_database: Database, untrusted_server: Witness,
                                       dev_pki: DevPkiBundle) -> None:
    db = sqlite_database
    db.settings = replace(db.settings, proofs=replace(
        db.settings.proofs, witness_url=untrusted_server.url,
        witness_ca_file=str(dev_pki.ca_file)))
    await _signed(db, 1)
    with pytest.raises(WitnessRefused, match="SSL|certificate"):
        await hand_to_witnesses(db, db.settings, None)
    assert untrusted_server.received == []


async def test_running_gateway_retries_until_the_witness_accepts(
    tmp_path: Path, witness_server: Witness, dev_pki: DevPkiBundle,
) -> None:
    witness_server.refuse = 2
    settings = gateway_settings(tmp_path / "gw", proofs={
        "witness_url": witness_server.url, "witness_ca_file": str(dev_pki.ca_file)})
    async with running_gateway(settings) as gw:
        assert gw.gw.db is not None
        async with asyncio.timeout(30):
            while True:
                if witness_server.received:
                    break
                await asyncio.sleep(0.1)
        assert witness_server.attempts == 3
        cp = notes.parse(witness_server.received[0])
        assert cp.origin == settings.proof_origin
        assert notes.verified_by(cp, proofs.public_keys(gw.gw.db.keyring)) is not None


def test_witness_url_must_be_https(tmp_path: Path) -> None:
    from config import ConfigError
    with pytest.raises(ConfigError, match="proofs.witness_url"):
        gateway_settings(tmp_path / "gw", proofs={"witness_url": "http://witness.example/"})
