"""The outbound worker against real receiving peers on loopback.

The remote operator is our own SMTP protocol server (relay kind, STARTTLS, DSN, a recording
policy) presenting a certificate from the development PKI, reached through ``[transport]``;
peers without STARTTLS or without DSN are plain aiosmtpd servers. The sending side is a real
database, pipeline and worker; DSNs to the local sender are read back from its INBOX.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import update

from accounts.mailboxes import add_mailbox
from config import Settings, load_settings
from mail.changes import ChangeHub
from mail.pipeline import Delivery, Pipeline, RemoteTarget
from smtp.outbound import OutboundWorker, retry_delay
from smtp.outbound_rows import make_due
from smtp.policy import GatewayEnvelope, Recipient
from smtp.server import SmtpServer, start_smtp_server
from smtp.session import GatewaySMTP
from storage import folders, proofs
from storage import messages as message_rows
from storage import queue as queue_rows
from storage.database import Database, open_database
from storage.schema import queue
from storage.types import utcnow
from tests.fixtures.gateway import free_port
from tests.fixtures.pki import DevPkiBundle, IssuedFiles
from tests.fixtures.smtp_protocol import RecordingPolicy
from trustspace.certs import fingerprint_sha256, load_certificate
from trustspace.refusal import Refusal

SENDER = "alice@mssante.test"
PEER_DOMAIN = "hopital-b.mssante.test"


def msgid(n: int) -> str:
    return f"<m{n}@mssante.test>"


def message(n: int = 1, body: str = "Résultat d'analyse") -> bytes:
    return (
        f"From: {SENDER}\r\nTo: bob@{PEER_DOMAIN}\r\nSubject: test {n}\r\n"
        f"Message-ID: {msgid(n)}\r\nX-MSS-CODECDA: 11502-2\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
        f"{body}\r\n"
    ).encode()


@dataclass
class PeerPolicy(RecordingPolicy):
    """The recording policy, plus: which session accepted each message, a slow accept to
    make overlap visible, and a temporary refusal for ``busy@``."""

    sessions: list[int] = field(default_factory=list)
    active: int = 0
    max_active: int = 0
    delay: float = 0.0

    async def check_rcpt(self, session: GatewaySMTP, envelope: GatewayEnvelope, address: str,
                         params: Any) -> None:
        if address.startswith("busy@"):
            raise Refusal(451, "4.2.1", "mailbox busy, try again later")
        await super().check_rcpt(session, envelope, address, params)

    async def accept(self, session: GatewaySMTP, envelope: GatewayEnvelope, data: bytes) -> str:
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            self.sessions.append(id(session))
            return await super().accept(session, envelope, data)
        finally:
            self.active -= 1


def peer_context(dev_pki: DevPkiBundle, identity: IssuedFiles) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(identity.cert_file, identity.key_file)
    ctx.load_verify_locations(cafile=str(dev_pki.ca_file))
    ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


@asynccontextmanager
async def peer_server(
    tmp_path: Path, dev_pki: DevPkiBundle, *, identity: IssuedFiles | None = None,
    host: str = "127.0.0.1",
) -> AsyncIterator[tuple[SmtpServer, PeerPolicy]]:
    settings = load_settings(data_dir=tmp_path / "peer", env={},
                             overrides={"gateway": {"domains": (PEER_DOMAIN,)},
                                        "smtp": {"relay_port": 0}})
    policy = PeerPolicy()
    server = await start_smtp_server(
        "relay", settings, policy, peer_context(dev_pki, identity or dev_pki.peer_server),
        host, 0,
    )
    try:
        yield server, policy
    finally:
        await server.close(0)


@dataclass
class Sender:
    """The sending gateway's parts: settings, database, pipeline, a worker factory."""

    settings: Settings
    db: Database
    pipeline: Pipeline
    workers: list[OutboundWorker] = field(default_factory=list)

    def worker(self, **kwargs: Any) -> OutboundWorker:
        kwargs.setdefault("trust", lambda domain: True)
        w = OutboundWorker(self.db, self.settings, self.pipeline, **kwargs)
        self.workers.append(w)
        return w

    async def submit(self, raw: bytes, *recipients: str, notify: str | None = None,
                     orcpt: str | None = None, ret: str | None = None,
                     envid: str | None = None, sender: str = SENDER) -> list[int]:
        stored = await self.pipeline.submit(Delivery(
            raw=raw, sender=sender, ret=ret, envid=envid,
            remote=[RemoteTarget(address=r, notify=notify, orcpt=orcpt) for r in recipients],
        ))
        return stored.queue_ids

    async def row(self, item_id: int) -> queue_rows.QueueItem:
        async with self.db.read() as conn:
            return await queue_rows.get(conn, item_id)

    async def inbox(self, address: str = SENDER) -> list[email.message.EmailMessage]:
        async with self.db.read() as conn:
            from storage import accounts
            account = await accounts.get_by_address(conn, address)
            assert account is not None
            inbox = await folders.get(conn, account.id, "INBOX")
            assert inbox is not None
            entries = await message_rows.fetch_range(conn, inbox.id)
            raws = [await self.db.blobs.read(conn, e.blob_id) for e in entries if e.blob_id]
        return [email.message_from_bytes(r, policy=email.policy.default)  # type: ignore[misc]
                for r in raws]

    async def proof_kinds(self, message_ref: str) -> list[str]:
        async with self.db.read() as conn:
            return [p.kind for p in await proofs.get_by_message(conn, message_ref)]


SenderFactory = Callable[..., Any]


@pytest.fixture
async def sender_gateway(tmp_path: Path, dev_pki: DevPkiBundle) -> AsyncIterator[SenderFactory]:
    """``await sender_gateway(port, host=..., **smtp_overrides)`` → :class:`Sender`."""
    made: list[Sender] = []

    async def make(port: int, host: str = "localhost", name: str = "", **smtp: Any) -> Sender:
        target = f"{host}:{port}" + (f" name={name}" if name else "")
        settings = load_settings(
            data_dir=tmp_path / f"a{len(made)}", env={},
            overrides={"tls": dev_pki.tls_overrides(),
                       "smtp": {"retry_schedule": ("1", "2", "4"), **smtp},
                       "transport": {PEER_DOMAIN: target}},
        )
        db = await open_database(settings, may_create_key=True)
        pipeline = Pipeline(db, settings, ChangeHub())
        await pipeline.start()
        await add_mailbox(db, SENDER, type="ORG", name="Alice Sender")
        s = Sender(settings, db, pipeline)
        made.append(s)
        return s

    yield make
    for s in made:
        for w in s.workers:
            await w.stop(0)
        await s.pipeline.stop()
        await s.db.close()


def dsn_parts(msg: email.message.EmailMessage) -> tuple[str, list[Any], Any]:
    """(human text, delivery-status blocks, returned part) of a multipart/report DSN."""
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts][:2] == ["text/plain", "message/delivery-status"]
    status = parts[1].get_payload()
    return parts[0].get_content(), status, parts[2]


# -- delivery ----------------------------------------------------------------------------------

async def test_relays_over_mutual_tls_with_dsn_params_and_proof(
    tmp_path: Path, dev_pki: DevPkiBundle, sender_gateway: SenderFactory
) -> None:
    async with peer_server(tmp_path, dev_pki) as (server, policy):
        a = await sender_gateway(server.port)
        raw = message(1)
        [qid] = await a.submit(raw, f"bob@{PEER_DOMAIN}", notify="SUCCESS,FAILURE",
                               orcpt=f"rfc822;Bob@{PEER_DOMAIN}", ret="HDRS", envid="ENV+42")
        assert await a.worker().run_once() == 1
        [got] = policy.accepted
        assert got.data.endswith(raw[-40:]) and b"X-MSS-CODECDA: 11502-2" in got.data
        # mutual TLS: the peer saw our server certificate as client certificate
        ours = load_certificate(dev_pki.server_cert_file)
        assert got.peer_cert is not None
        assert fingerprint_sha256(got.peer_cert) == fingerprint_sha256(ours)
        # RFC 3461 §5.2.2: DSN parameters passed on
        assert got.mail_params.ret == "HDRS" and got.mail_params.envid == "ENV+42"
        [rcpt] = got.recipients
        assert isinstance(rcpt, Recipient)
        assert rcpt.params.notify == frozenset({"SUCCESS", "FAILURE"})
        assert rcpt.params.orcpt == ("rfc822", f"Bob@{PEER_DOMAIN}")
        row = await a.row(qid)
        assert row.state == "sent" and row.last_reply and row.last_reply.startswith("250")
        async with a.db.read() as conn:
            records = await proofs.get_by_message(conn, msgid(1))
        [relayed] = [p for p in records if p.kind == "relayed"]
        d = relayed.details
        assert d["remote_host"] == "localhost" and d["reply"].startswith("250")
        assert d["tls_version"] in ("TLSv1.2", "TLSv1.3") and d["tls_cipher"]
        peer_cert = load_certificate(dev_pki.peer_server.cert_file)
        assert d["peer_certificate_sha256"] == fingerprint_sha256(peer_cert)
        # the next hop speaks DSN: it reports delivery itself, we send no "relayed" DSN
        assert await a.inbox() == []


async def test_reuses_one_connection_for_several_messages(
    tmp_path: Path, dev_pki: DevPkiBundle, sender_gateway: SenderFactory
) -> None:
    async with peer_server(tmp_path, dev_pki) as (server, policy):
        a = await sender_gateway(server.port, outbound_concurrency_per_destination=1)
        for n in range(3):
            await a.submit(message(n), f"bob@{PEER_DOMAIN}")
        assert await a.worker().run_once() == 3
        assert len(policy.accepted) == 3
        assert len(set(policy.sessions)) == 1  # one connection, RSET between messages


async def test_per_destination_concurrency_limit(
    tmp_path: Path, dev_pki: DevPkiBundle, sender_gateway: SenderFactory
) -> None:
    async with peer_server(tmp_path, dev_pki) as (server, policy):
        policy.delay = 0.1
        a = await sender_gateway(server.port, outbound_concurrency_per_destination=2)
        for n in range(6):
            await a.submit(message(n), f"bob@{PEER_DOMAIN}")
        assert await a.worker().run_once() == 6
        assert len(policy.accepted) == 6
        assert len(set(policy.sessions)) == 2
        assert policy.max_active == 2


async def test_temporary_failure_backs_off_on_the_schedule(
    tmp_path: Path, dev_pki: DevPkiBundle, sender_gateway: SenderFactory
) -> None:
    async with peer_server(tmp_path, dev_pki) as (server, policy):
        a = await sender_gateway(server.port)
        [qid] = await a.submit(message(1), f"busy@{PEER_DOMAIN}")
        worker = a.worker()
        before = utcnow()
        assert await worker.run_once() == 1
        row = await a.row(qid)
        assert row.state == "deferred" and row.attempts == 1
        assert row.last_reply and row.last_reply.startswith("451 4.2.1")
        assert timedelta(seconds=0.5) < row.next_attempt_at - before < timedelta(seconds=2)
        assert await worker.run_once() == 0  # not due yet
        await asyncio.sleep(1.1)
        before = utcnow()
        assert await worker.run_once() == 1
        row = await a.row(qid)
        assert row.attempts == 2
        assert timedelta(seconds=1.5) < row.next_attempt_at - before < timedelta(seconds=3)
        assert (await a.proof_kinds(msgid(1))).count("deferred") == 2
        assert policy.accepted == []
        assert await a.inbox() == []  # no delay DSN before delay_warning_hours
    assert retry_delay(("1", "2", "4"), 9) == timedelta(seconds=4)  # last value repeats


async def test_permanent_failure_bounces_with_a_dsn_in_the_senders_inbox(
    tmp_path: Path, dev_pki: DevPkiBundle, sender_gateway: SenderFactory
) -> None:
    async with peer_server(tmp_path, dev_pki) as (server, _policy):
        a = await sender_gateway(server.port)
        raw = message(1, body="corps confidentiel")
        [qid] = await a.submit(raw, f"unknown@{PEER_DOMAIN}", envid="E-1",
                               orcpt=f"rfc822;unknown@{PEER_DOMAIN}")
        await a.worker().run_once()
        row = await a.row(qid)
        assert row.state == "bounced" and row.last_reply.startswith("550 5.1.1")
        kinds = await a.proof_kinds(msgid(1))
        assert "bounced" in kinds and "dsn-sent" in kinds
        [dsn] = await a.inbox()
        assert dsn["Auto-Submitted"] == "auto-replied"
        assert str(dsn["To"]) == SENDER
        text, status, returned = dsn_parts(dsn)
        assert "could not be delivered" in text and "n'a pas pu être remis" in text
        per_message, per_rcpt = status[0], status[1]
        assert per_message["Reporting-MTA"] == f"dns;{a.settings.hostname}"
        assert per_message["Original-Envelope-Id"] == "E-1"
        assert per_message["Arrival-Date"]
        assert per_rcpt["Final-Recipient"] == f"rfc822;unknown@{PEER_DOMAIN}"
        assert per_rcpt["Original-Recipient"] == f"rfc822;unknown@{PEER_DOMAIN}"
        assert per_rcpt["Action"] == "failed" and per_rcpt["Status"] == "5.1.1"
        assert per_rcpt["Remote-MTA"] == "dns;localhost"
        assert per_rcpt["Diagnostic-Code"].startswith("smtp;550 5.1.1")
        assert per_rcpt["Last-Attempt-Date"]
        # RET absent: headers only, never the body
        assert returned.get_content_type() == "text/rfc822-headers"
        assert "corps confidentiel" not in returned.get_content()
        assert "Message-ID: <m1@mssante.test>" in returned.get_content()


async def test_notify_never_bounces_without_dsn(
    tmp_path: Path, dev_pki: DevPkiBundle, sender_gateway: SenderFactory
) -> None:
    async with peer_server(tmp_path, dev_pki) as (server, _policy):
        a = await sender_gateway(server.port)
        [qid] = await a.submit(message(1), f"unknown@{PEER_DOMAIN}", notify="NEVER")
        await a.worker().run_once()
        assert (await a.row(qid)).state == "bounced"
        assert await a.inbox() == []
        assert "dsn-sent" not in await a.proof_kinds(msgid(1))


async def test_null_sender_never_gets_a_dsn(
    tmp_path: Path, dev_pki: DevPkiBundle, sender_gateway: SenderFactory
) -> None:
    async with peer_server(tmp_path, dev_pki) as (server, _policy):
        a = await sender_gateway(server.port)
        [qid] = await a.submit(message(1), f"unknown@{PEER_DOMAIN}", sender="")
        await a.worker().run_once()
        assert (await a.row(qid)).state == "bounced"
        assert "dsn-sent" not in await a.proof_kinds(msgid(1))


async def test_queue_lifetime_exceeded_bounces_with_full_content(
    tmp_path: Path, dev_pki: DevPkiBundle, sender_gateway: SenderFactory
) -> None:
    async with peer_server(tmp_path, dev_pki) as (server, _policy):
        a = await sender_gateway(server.port)
        [qid] = await a.submit(message(1, body="texte intégral"), f"busy@{PEER_DOMAIN}",
                               ret="FULL")
        worker = a.worker()
        await worker.run_once()
        assert (await a.row(qid)).state == "deferred"
        async with a.db.begin() as conn:
            await conn.execute(update(queue).where(queue.c.id == qid)
                               .values(expires_at=utcnow() - timedelta(seconds=1)))
            await make_due(conn, qid)
        await worker.run_once()
        row = await a.row(qid)
        assert row.state == "bounced" and "queue lifetime" in (row.last_reply or "")
        dsns = [m for m in await a.inbox() if m["Subject"].startswith("Undelivered")]
        assert len(dsns) == 1
        _, status, returned = dsn_parts(dsns[0])
        assert status[1]["Status"] == "5.4.7" and status[1]["Action"] == "failed"
        assert returned.get_content_type() == "message/rfc822"  # RET=FULL
        assert "texte intégral" in returned.get_payload(0).get_content()


async def test_one_delay_dsn_after_the_warning_time(
    tmp_path: Path, dev_pki: DevPkiBundle, sender_gateway: SenderFactory
) -> None:
    async with peer_server(tmp_path, dev_pki) as (server, _policy):
        a = await sender_gateway(server.port)
        [qid] = await a.submit(message(1), f"busy@{PEER_DOMAIN}")
        async with a.db.begin() as conn:
            await conn.execute(update(queue).where(queue.c.id == qid)
                               .values(created_at=utcnow() - timedelta(hours=5)))
        worker = a.worker()
        await worker.run_once()
        for _ in range(2):
            async with a.db.begin() as conn:
                await make_due(conn, qid)
            await worker.run_once()
        row = await a.row(qid)
        assert row.state == "deferred" and row.delay_notified and row.attempts == 3
        [dsn] = await a.inbox()
        _, status, _ = dsn_parts(dsn)
        assert status[1]["Action"] == "delayed" and status[1]["Status"] == "4.2.1"
        assert status[1]["Will-Retry-Until"]


async def test_trust_space_refusal_bounces(
    tmp_path: Path, dev_pki: DevPkiBundle, sender_gateway: SenderFactory
) -> None:
    async with peer_server(tmp_path, dev_pki) as (server, policy):
        a = await sender_gateway(server.port)
        [qid] = await a.submit(message(1), f"bob@{PEER_DOMAIN}")
        await a.worker(trust=lambda domain: False).run_once()
        row = await a.row(qid)
        assert row.state == "bounced"
        assert row.last_reply == f"550 5.7.1 {PEER_DOMAIN} is not in the MSSanté trust space"
        assert policy.accepted == []


# -- peers that must not get the message -------------------------------------------------------

async def test_peer_certificate_from_unknown_ca_is_deferred(
    tmp_path: Path, dev_pki: DevPkiBundle, sender_gateway: SenderFactory
) -> None:
    async with peer_server(tmp_path, dev_pki, identity=dev_pki.unknown_server) as (
        server, policy,
    ):
        a = await sender_gateway(server.port)
        [qid] = await a.submit(message(1), f"bob@{PEER_DOMAIN}")
        await a.worker().run_once()
        row = await a.row(qid)
        assert row.state == "deferred"
        assert row.last_reply.startswith("451 4.7.5") and "certificate verify failed" in \
            row.last_reply
        assert policy.accepted == []


async def test_peer_certificate_name_mismatch_is_deferred(
    tmp_path: Path, dev_pki: DevPkiBundle, sender_gateway: SenderFactory
) -> None:
    # The certificate names hopital-b.mssante.test, localhost and 127.0.0.1, not this name.
    async with peer_server(tmp_path, dev_pki, host="127.0.0.2") as (server, policy):
        a = await sender_gateway(server.port, host="127.0.0.2", name="mx.elsewhere.test")
        [qid] = await a.submit(message(1), f"bob@{PEER_DOMAIN}")
        await a.worker().run_once()
        row = await a.row(qid)
        assert row.state == "deferred" and row.last_reply.startswith("451 4.7.5")
        assert "mx.elsewhere.test" in row.last_reply
        assert policy.accepted == []


async def test_transport_by_address_checks_the_certificate_against_the_domain(
    tmp_path: Path, dev_pki: DevPkiBundle, sender_gateway: SenderFactory
) -> None:
    """A transport naming an address the certificate does not carry (127.0.0.2): the
    certificate is checked against the destination domain, as Postfix's nexthop match."""
    async with peer_server(tmp_path, dev_pki, host="127.0.0.2") as (server, policy):
        a = await sender_gateway(server.port, host="127.0.0.2")
        [qid] = await a.submit(message(1), f"bob@{PEER_DOMAIN}")
        await a.worker().run_once()
        row = await a.row(qid)
        assert row.state == "sent", row.last_reply
        assert len(policy.accepted) == 1


class _Recorder:
    def __init__(self) -> None:
        self.envelopes: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        return "250 2.0.0 Ok"


@asynccontextmanager
async def aiosmtpd_peer(tls: ssl.SSLContext | None) -> AsyncIterator[tuple[int, _Recorder]]:
    recorder = _Recorder()
    port = free_port()
    kwargs: dict[str, Any] = {"hostname": "127.0.0.1", "port": port}
    if tls is not None:
        kwargs.update(tls_context=tls, require_starttls=True)
    controller = Controller(recorder, **kwargs)
    await asyncio.to_thread(controller.start)
    try:
        yield port, recorder
    finally:
        await asyncio.to_thread(controller.stop)


async def test_peer_without_starttls_never_gets_the_message_in_clear(
    dev_pki: DevPkiBundle, sender_gateway: SenderFactory
) -> None:
    async with aiosmtpd_peer(None) as (port, recorder):
        a = await sender_gateway(port)
        [qid] = await a.submit(message(1), f"bob@{PEER_DOMAIN}")
        await a.worker().run_once()
        row = await a.row(qid)
        assert row.state == "deferred"
        assert row.last_reply.startswith("451 4.7.4") and "STARTTLS" in row.last_reply
        assert recorder.envelopes == []


async def test_notify_success_through_a_peer_without_dsn_gives_a_relayed_dsn(
    dev_pki: DevPkiBundle, sender_gateway: SenderFactory
) -> None:
    async with aiosmtpd_peer(peer_context(dev_pki, dev_pki.peer_server)) as (port, recorder):
        a = await sender_gateway(port)
        [qid] = await a.submit(message(1), f"bob@{PEER_DOMAIN}", notify="SUCCESS")
        await a.worker().run_once()
        assert (await a.row(qid)).state == "sent"
        [envelope] = recorder.envelopes
        assert envelope.rcpt_options == []  # the peer does not speak DSN: nothing passed on
        [dsn] = await a.inbox()
        _, status, _ = dsn_parts(dsn)
        assert status[1]["Action"] == "relayed" and status[1]["Status"].startswith("2.")


async def test_two_workers_never_send_the_same_row(
    tmp_path: Path, dev_pki: DevPkiBundle, sender_gateway: SenderFactory
) -> None:
    async with peer_server(tmp_path, dev_pki) as (server, policy):
        a = await sender_gateway(server.port)
        ids = []
        for n in range(12):
            ids += await a.submit(message(n), f"bob@{PEER_DOMAIN}")
        w1 = a.worker(worker_id="w1", claim_limit=3)
        w2 = a.worker(worker_id="w2", claim_limit=3)
        while True:
            counts = await asyncio.gather(w1.run_once(), w2.run_once())
            if sum(counts) == 0:
                break
        sent_ids = [m.data.split(b"Message-ID: ")[1].split(b"\r\n")[0] for m in policy.accepted]
        assert len(sent_ids) == 12 and len(set(sent_ids)) == 12
        assert [(await a.row(i)).state for i in ids] == ["sent"] * 12


async def test_running_worker_picks_up_new_rows_and_stops_cleanly(
    tmp_path: Path, dev_pki: DevPkiBundle, sender_gateway: SenderFactory
) -> None:
    async with peer_server(tmp_path, dev_pki) as (server, policy):
        a = await sender_gateway(server.port)
        worker = a.worker(poll_interval=0.2)
        await worker.start()
        [qid] = await a.submit(message(1), f"bob@{PEER_DOMAIN}")
        worker.wake()
        for _ in range(100):  # the worker polls the database; give it up to 5 s
            if (await a.row(qid)).state == "sent":
                break
            await asyncio.sleep(0.05)
        assert (await a.row(qid)).state == "sent"
        await worker.stop(1.0)
        assert len(policy.accepted) == 1


async def test_restarted_node_takes_its_rows_back_at_once(
    tmp_path: Path, dev_pki: DevPkiBundle, sender_gateway: SenderFactory
) -> None:
    """A node killed during a delivery left its rows in flight under a long lease; started
    again under the same node name it delivers them at once (failed before: they waited
    for the lease to lapse)."""
    async with peer_server(tmp_path, dev_pki) as (server, policy):
        a = await sender_gateway(server.port)
        [qid] = await a.submit(message(1), f"bob@{PEER_DOMAIN}")
        async with a.db.begin() as conn:
            await queue_rows.claim_due(conn, worker="node-a", limit=10,
                                       lease=timedelta(minutes=10))
        worker = a.worker(worker_id="node-a", poll_interval=0.1)
        await worker.start()
        for _ in range(100):
            if (await a.row(qid)).state == "sent":
                break
            await asyncio.sleep(0.05)
        assert (await a.row(qid)).state == "sent"
        assert len(policy.accepted) == 1


async def test_lease_is_renewed_while_a_delivery_runs(
    tmp_path: Path, dev_pki: DevPkiBundle, sender_gateway: SenderFactory
) -> None:
    """A delivery longer than the lease keeps its row: the lease is renewed, so another
    node does not take the row and send it a second time (failed before: nothing renewed
    the lease and a second worker claimed the row)."""
    greeting_sent = asyncio.Event()

    async def slow_peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(3.0)  # a peer slower than the lease
        greeting_sent.set()
        writer.close()

    slow = await asyncio.start_server(slow_peer, "127.0.0.1", 0)
    port = slow.sockets[0].getsockname()[1]
    try:
        a = await sender_gateway(port, host="127.0.0.1")
        [qid] = await a.submit(message(1), f"bob@{PEER_DOMAIN}")
        first = a.worker(worker_id="node-a", poll_interval=0.1, lease=timedelta(seconds=1.2),
                         timeout=10.0)
        await first.start()
        for _ in range(40):
            if (await a.row(qid)).state == "inflight":
                break
            await asyncio.sleep(0.05)
        taken = await a.row(qid)
        assert taken.claimed_by == "node-a"
        await asyncio.sleep(2.0)  # well past the first lease
        later = await a.row(qid)
        assert later.claimed_by == "node-a" and later.state == "inflight", later
        assert later.attempts == taken.attempts == 1, later  # the same, first attempt
        assert later.claimed_until is not None and taken.claimed_until is not None
        assert later.claimed_until > taken.claimed_until
        second = a.worker(worker_id="node-b", lease=timedelta(seconds=1.2))
        assert await second.run_once() == 0
        await first.stop(0)
    finally:
        slow.close()
        await slow.wait_closed()
