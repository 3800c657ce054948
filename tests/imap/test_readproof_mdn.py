"""Read proofs and automatic read receipts (RFC 8098) over the real server, with imapclient.

The first non-PEEK body FETCH, or the first \\Seen set by STORE, records one ``read`` proof
per reader, saying how the reading was observed (``body-fetch``, ``seen-flag``); an MDN goes
back through the pipeline once per recipient when the account's policy is ``always`` — to a
local sender's INBOX or to the outbound queue of a trusted remote operator — and never
otherwise. Its disposition is ``displayed``, so a bare \\Seen (what "mark as read" sends for
a message never shown) sends none; a \\Seen after the session downloaded the body does.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import imapclient
from sqlalchemy import select

from accounts import delegations
from accounts.mailboxes import add_mailbox
from storage import accounts as account_rows
from storage import proofs
from storage.schema import folder_messages, messages, queue
from tests.fixtures.imap import ALICE, BOB, ImapEnv, message, start_imap_env
from tests.fixtures.pki import DevPkiBundle
from trustspace.whitelist import build_whitelist_xml

T = TypeVar("T")
REMOTE = "dr.remote@ch-exemple.mssante.fr"


async def _in_thread(fn: Callable[[], T]) -> T:
    return await asyncio.to_thread(fn)


def _client(env: ImapEnv, user: str = ALICE, name: str | None = None) -> imapclient.IMAPClient:
    c = imapclient.IMAPClient("127.0.0.1", port=env.tls_port, ssl=True,
                              ssl_context=env.client_ssl(), timeout=10)
    if name is not None:
        c.id_({"name": name})
    c.login(user, env.alice_password if user == ALICE else env.bob_password)
    return c


def _asking(n: int, sender: str = BOB, dnt: str | None = None) -> bytes:
    """Message ``n`` from ``sender`` asking for a read receipt to ``dnt`` (default: sender)."""
    raw = message(n, extra=f"Disposition-Notification-To: <{dnt or sender}>\r\n")
    return raw.replace(f"From: Dr Bob <{BOB}>".encode(), f"From: <{sender}>".encode())


async def _proofs(env: ImapEnv, ref: str, kind: str) -> list[proofs.ProofRecord]:
    db = env.gateway.db
    assert db is not None
    async with db.read() as conn:
        return [p for p in await proofs.get_by_message(conn, ref) if p.kind == kind]


async def _mdn_proofs(env: ImapEnv) -> list[dict[str, Any]]:
    db = env.gateway.db
    assert db is not None
    async with db.read() as conn:
        rows = await conn.execute(select(proofs.proofs.c.details)
                                  .where(proofs.proofs.c.kind == "mdn-sent"))
        return [json.loads(d) for d in rows.scalars()]


async def _inbox(env: ImapEnv, address: str) -> list[bytes]:
    """The raw messages in ``address``'s INBOX, read from the store."""
    db = env.gateway.db
    assert db is not None
    fid = await env.folder_id(address, "INBOX")
    async with db.read() as conn:
        rows = (await conn.execute(
            select(messages.c.blob_id, messages.c.size)
            .join(folder_messages, folder_messages.c.message_id == messages.c.id)
            .where(folder_messages.c.folder_id == fid).order_by(folder_messages.c.uid))).all()
        return [await db.blobs.read(conn, b, 0, s) for b, s in rows]


async def _queue(env: ImapEnv) -> list[tuple[str, str]]:
    db = env.gateway.db
    assert db is not None
    async with db.read() as conn:
        return [(s, r) for s, r in await conn.execute(select(queue.c.sender, queue.c.recipient))]


async def _policy(env: ImapEnv, address: str, policy: str) -> None:
    db = env.gateway.db
    assert db is not None
    async with db.begin() as conn:
        account = await account_rows.get_by_address(conn, address)
        assert account is not None
        await account_rows.update_fields(conn, account.id, mdn_policy=policy)


async def _trust(env: ImapEnv, *domains: str) -> None:
    """Puts ``domains`` in the trust space next to the local ones."""
    path = env.settings.trustspace_file
    path.write_bytes(build_whitelist_xml([*env.settings.gateway.domains, *domains]))
    assert env.gateway.trust is not None
    await env.gateway.trust.load_file(path)


async def test_read_proof_once_on_first_body_fetch_never_on_peek(imap_env: ImapEnv) -> None:
    for n in (1, 2):
        await imap_env.deliver(message(n))

    def peek_then_read() -> None:
        c = _client(imap_env, name="Thunderbird-test")
        c.select_folder("INBOX")
        c.fetch([1], ["BODY.PEEK[]", "BODY.PEEK[TEXT]", "RFC822.HEADER"])
    await _in_thread(peek_then_read)
    assert await _proofs(imap_env, "<m1@mssante.test>", "read") == []

    def read() -> None:
        c = _client(imap_env, name="Thunderbird-test")
        c.select_folder("INBOX")
        c.fetch([1], ["BODY[TEXT]"])
        assert b"\\Seen" in c.get_flags([1])[1]
        c.fetch([1], ["RFC822"])
        c.remove_flags([1], [b"\\Seen"])
        c.add_flags([1], [b"\\Seen"])
        c.logout()
    await _in_thread(read)
    await _in_thread(read)
    [proof] = await _proofs(imap_env, "<m1@mssante.test>", "read")
    assert proof.actor == ALICE
    assert proof.details["reader"] == ALICE and proof.details["mailbox"] == ALICE
    assert proof.details["via"] == "body-fetch" and proof.details["folder"] == "INBOX"
    assert proof.details["client"] == "Thunderbird-test"
    assert proof.details["tls"] in ("TLSv1.2", "TLSv1.3") and proof.details["session"]
    assert proof.content_sha256

    def mark_seen() -> None:
        c = _client(imap_env)
        c.select_folder("INBOX")
        c.add_flags([2], [b"\\Seen"])
        c.logout()
    await _in_thread(mark_seen)
    [proof] = await _proofs(imap_env, "<m2@mssante.test>", "read")
    assert proof.details["via"] == "seen-flag" and proof.details["client"] is None


async def test_delegate_reading_is_proved_under_its_own_address(imap_env: ImapEnv) -> None:
    db = imap_env.gateway.db
    assert db is not None
    org = "accueil@mssante.test"
    await add_mailbox(db, org, type="ORG", name="Accueil")
    await delegations.grant(db, org, BOB, "lrs")
    await imap_env.deliver(message(5), to=org)

    def read() -> None:
        c = _client(imap_env, BOB)
        c.select_folder(f"Shared/{org}/INBOX", readonly=True)
        c.fetch([1], ["BODY[]"])  # EXAMINE: not marked \Seen, but the body was shown
        c.logout()
    await _in_thread(read)
    [proof] = await _proofs(imap_env, "<m5@mssante.test>", "read")
    assert proof.actor == BOB and proof.details["mailbox"] == org
    assert proof.details["folder"] == "INBOX"


async def test_mdn_to_local_sender_once(imap_env: ImapEnv) -> None:
    await _policy(imap_env, ALICE, "always")
    await imap_env.deliver(_asking(1))

    def read() -> None:
        c = _client(imap_env)
        c.select_folder("INBOX")
        c.fetch([1], ["BODY[]"])
        c.logout()
    await _in_thread(read)
    await _in_thread(read)
    [raw] = await _inbox(imap_env, BOB)
    mdn = email.message_from_bytes(raw, policy=email.policy.default)
    assert mdn.get_content_type() == "multipart/report"
    assert mdn.get_param("report-type") == "disposition-notification"
    assert mdn["To"] == BOB and mdn["From"] == ALICE
    parts = list(mdn.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain",
                                                     "message/disposition-notification"]
    report = parts[1].get_payload()[0]
    assert report["Final-Recipient"] == f"rfc822;{ALICE}"
    assert report["Original-Message-ID"] == "<m1@mssante.test>"
    assert report["Disposition"] == "automatic-action/MDN-sent-automatically; displayed"
    assert report["Reporting-UA"].endswith("; mssante-gateway")
    [details] = await _mdn_proofs(imap_env)
    assert details["original_message_id"] == "<m1@mssante.test>" and details["to"] == BOB
    assert await _queue(imap_env) == []


async def test_mdn_to_remote_trusted_sender_is_queued(imap_env: ImapEnv) -> None:
    await _trust(imap_env, "ch-exemple.mssante.fr")
    await _policy(imap_env, ALICE, "always")
    await imap_env.deliver(_asking(2, sender=REMOTE))

    def read() -> None:
        c = _client(imap_env)
        c.select_folder("INBOX")
        c.fetch([1], ["BODY.PEEK[]"])  # the offline copy, shown by the client
        c.add_flags([1], [b"\\Seen"])  # the first \Seen by STORE counts as reading
        c.logout()
    await _in_thread(read)
    # RFC 8098 §3: the receipt leaves with the null reverse path.
    assert await _queue(imap_env) == [("", REMOTE)]
    assert [d["to"] for d in await _mdn_proofs(imap_env)] == [REMOTE]


async def test_no_mdn_when_not_allowed(imap_env: ImapEnv) -> None:
    await _trust(imap_env, "ch-exemple.mssante.fr")
    db = imap_env.gateway.db
    assert db is not None
    cases: list[tuple[str, str, bytes]] = [
        ("ask", "INBOX", _asking(10)),  # the default: nothing automatic
        ("never", "INBOX", _asking(11)),
        ("always", "Sent", _asking(12)),
        ("always", "Drafts", _asking(13)),
        ("always", "INBOX", _asking(14, sender="someone@outside.example")),  # untrusted
        ("always", "INBOX", _asking(15, dnt="third@mssante.test")),  # not the sender
        ("always", "INBOX", message(16)),  # no receipt asked
    ]
    for n, (policy, folder, raw) in enumerate(cases):
        await _policy(imap_env, ALICE, policy)
        await imap_env.deliver(raw, folder=folder)

        def read(folder: str = folder) -> None:
            c = _client(imap_env)
            c.select_folder(folder)
            c.fetch(c.search(["ALL"]), ["BODY[]"])
            c.logout()
        await _in_thread(read)
        assert await _proofs(imap_env, f"<m{10 + n}@mssante.test>", "read"), (policy, folder)
    assert await _inbox(imap_env, BOB) == []
    assert await _queue(imap_env) == []
    assert await _mdn_proofs(imap_env) == []


async def test_read_marker_and_mdn_on_both_engines(db_url: str, tmp_path: Path,
                                                    dev_pki: DevPkiBundle) -> None:
    """The once-only markers (INSERT … ON CONFLICT DO NOTHING RETURNING) on SQLite and
    PostgreSQL, with two sessions reading the same message at the same time."""
    env = await start_imap_env(tmp_path / "data", dev_pki, {"database": {"url": db_url}})
    try:
        await _policy(env, ALICE, "always")
        await env.deliver(_asking(30))

        def read() -> None:
            c = _client(env)
            c.select_folder("INBOX")
            c.fetch([1], ["BODY[]"])
            c.logout()
        await asyncio.gather(_in_thread(read), _in_thread(read), _in_thread(read))
        assert len(await _proofs(env, "<m30@mssante.test>", "read")) == 1
        assert len(await _inbox(env, BOB)) == 1
        assert len(await _mdn_proofs(env)) == 1
    finally:
        await env.gateway.stop(grace=0)


async def test_mdn_sent_proof_is_filed_under_the_message_read(imap_env: ImapEnv) -> None:
    """``proofs show <original>`` must list the receipt: the proof names the message that
    was read (and its content hash), the MDN's own Message-ID stays in the details."""
    await _policy(imap_env, ALICE, "always")
    stored = await imap_env.deliver(_asking(7))

    def read() -> None:
        c = _client(imap_env)
        c.select_folder("INBOX")
        c.fetch([1], ["BODY[]"])
        c.logout()
    await _in_thread(read)
    [proof] = await _proofs(imap_env, "<m7@mssante.test>", "mdn-sent")
    assert proof.content_sha256 == stored.content_sha256
    assert proof.details["mdn_message_id"].startswith("<mdn.")
    [mdn] = await _inbox(imap_env, BOB)
    assert proof.details["mdn_message_id"].encode() in mdn


async def test_bare_seen_flag_proves_a_reading_but_sends_no_displayed_receipt(
        imap_env: ImapEnv) -> None:
    await _policy(imap_env, ALICE, "always")
    await imap_env.deliver(_asking(40))

    def mark_read() -> None:
        c = _client(imap_env)
        c.select_folder("INBOX")
        c.fetch([1], ["BODY.PEEK[HEADER]", "BODY.PEEK[TEXT]<0.200>"])  # a list and preview
        c.add_flags([1], [b"\\Seen"])
        c.logout()
    await _in_thread(mark_read)
    [proof] = await _proofs(imap_env, "<m40@mssante.test>", "read")
    assert proof.details["via"] == "seen-flag"
    assert await _inbox(imap_env, BOB) == [] and await _mdn_proofs(imap_env) == []

    def display() -> None:  # displayed later: the receipt is owed then, once
        c = _client(imap_env)
        c.select_folder("INBOX")
        c.fetch([1], ["BODY[]"])
        c.fetch([1], ["BODY[]"])
        c.logout()
    await _in_thread(display)
    await _in_thread(display)
    assert len(await _proofs(imap_env, "<m40@mssante.test>", "read")) == 1
    assert len(await _inbox(imap_env, BOB)) == 1
    [details] = await _mdn_proofs(imap_env)
    assert details["disposition"].endswith("; displayed")


async def test_seen_flag_after_a_download_by_the_same_session_sends_the_receipt(
        imap_env: ImapEnv) -> None:
    await _policy(imap_env, ALICE, "always")
    await imap_env.deliver(_asking(41))
    await imap_env.deliver(_asking(42))

    def offline_then_seen() -> None:
        downloader = _client(imap_env)
        downloader.select_folder("INBOX")
        downloader.fetch([1], ["BODY.PEEK[]"])
        downloader.logout()
        c = _client(imap_env)  # another session: it downloaded nothing
        c.select_folder("INBOX")
        c.fetch([2], ["BODY.PEEK[]"])
        c.add_flags([1, 2], [b"\\Seen"])
        c.logout()
    await _in_thread(offline_then_seen)
    for n in (41, 42):
        [proof] = await _proofs(imap_env, f"<m{n}@mssante.test>", "read")
        assert proof.details["via"] == "seen-flag"
    assert [d["original_message_id"] for d in await _mdn_proofs(imap_env)] == [
        "<m42@mssante.test>"]
