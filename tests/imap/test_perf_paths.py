"""The fast paths of the IMAP server: batched body reads in FETCH, the shared decoded-view
cache, change queries shared between sessions woken by one change, and the \\Recent mark
kept in memory. Each is checked for the same answers as the slow path and for its bound on
database statements."""

from __future__ import annotations

import asyncio
import re
import ssl
import sys
from bisect import bisect_left
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import event

from imap.selected import UidList
from mail.views import ViewCache, build_view
from mailstore.store import SpanCache, SqlMailStore
from tests.fixtures.imap import ALICE, ImapEnv, message


class Client:
    """A minimal IMAP client over TLS: tagged commands, raw replies (literals included)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.n = 0

    async def command(self, text: str) -> bytes:
        self.n += 1
        tag = b"t%d" % self.n
        self.writer.write(tag + b" " + text.encode() + b"\r\n")
        await self.writer.drain()
        out = bytearray()
        while True:
            line = await self.reader.readline()
            assert line, "connection closed"
            out += line
            m = re.search(rb"\{(\d+)\}\r\n$", line)
            if m:
                out += await self.reader.readexactly(int(m.group(1)))
                continue
            if line.startswith(tag + b" "):
                assert line.startswith(tag + b" OK"), line
                return bytes(out)


@asynccontextmanager
async def connect(env: ImapEnv) -> AsyncIterator[Client]:
    ctx: ssl.SSLContext = env.client_ssl()
    reader, writer = await asyncio.open_connection("127.0.0.1", env.tls_port, ssl=ctx,
                                                   limit=1 << 22)
    await reader.readline()
    client = Client(reader, writer)
    await client.command(f'LOGIN "{ALICE}" "{env.alice_password}"')
    try:
        yield client
    finally:
        writer.close()


@contextmanager
def counted(env: ImapEnv) -> Iterator[list[str]]:
    """Every SQL statement the gateway runs inside the block."""
    db = env.gateway.db
    assert db is not None
    seen: list[str] = []

    def on_execute(_c: object, _cur: object, stmt: str, *_a: object) -> None:
        seen.append(stmt)

    # Writes go through db.writer, reads through db.reader (engines of their own on SQLite).
    engines = {id(e.sync_engine): e.sync_engine
               for e in (db.engine, db.reader, db.writer)}.values()
    for engine in engines:
        event.listen(engine, "before_cursor_execute", on_execute)
    try:
        yield seen
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", on_execute)


async def test_fetch_of_many_bodies_reads_them_in_one_query(imap_env: ImapEnv) -> None:
    big = "x" * 200_000  # several segments: the header page must not read the whole body
    for n in range(1, 61):
        await imap_env.deliver(message(n, body=big if n == 7 else None))
    async with connect(imap_env) as client:
        await client.command("SELECT INBOX")
        items = "(UID FLAGS BODY.PEEK[HEADER.FIELDS (FROM SUBJECT)] BODY.PEEK[TEXT]<0.8>)"
        with counted(imap_env) as statements:
            batched = await client.command(f"FETCH 1:50 {items}")
        body_queries = [s for s in statements if "blob_segments" in s]
        assert len(body_queries) == 1, body_queries
        # Same answer, message by message, as single fetches (one body query each).
        single = b"".join([
            (await client.command(f"FETCH {n} {items}")).split(b"\r\n", 1)[0] + b"\r\n"
            for n in range(1, 51)
        ])
        assert b"Subject: Compte rendu 7\r\n" in batched
        assert b"BODY[TEXT]<0> {8}\r\nxxxxxxxx" in batched
        assert [ln for ln in batched.split(b"\r\n") if ln.startswith(b"* ")] == \
            [ln for ln in single.split(b"\r\n") if ln.startswith(b"* ")]
        whole = await client.command("FETCH 7 BODY.PEEK[]")
        assert whole.count(b"x") >= 200_000


async def test_non_peek_fetch_still_sets_seen_and_proves_read(imap_env: ImapEnv) -> None:
    for n in range(1, 4):
        await imap_env.deliver(message(n))
    async with connect(imap_env) as client:
        await client.command("SELECT INBOX")
        out = await client.command("FETCH 1:3 (BODY[HEADER.FIELDS (SUBJECT)])")
        assert out.count(b"\\Seen") == 3
        flags = await client.command("FETCH 1:3 (FLAGS)")
        assert flags.count(b"\\Seen") == 3


async def test_uid_flags_fetch_needs_no_body_or_view(imap_env: ImapEnv) -> None:
    for n in range(1, 21):
        await imap_env.deliver(message(n), flags=("\\Flagged",) if n % 2 else ())
    async with connect(imap_env) as client:
        await client.command("SELECT INBOX")
        with counted(imap_env) as statements:
            out = await client.command("UID FETCH 1:* (UID FLAGS)")
        assert not [s for s in statements if "blob_segments" in s or "view" in s]
        assert out.count(b"FETCH (UID") == 20
        assert out.count(b"\\Flagged") == 10


def test_view_cache_is_bounded_and_keyed_by_content() -> None:
    cache = ViewCache(capacity=2)
    texts = [build_view(message(n)).to_json() for n in range(3)]
    first = cache.get(texts[0])
    assert cache.get(texts[0]) is first
    cache.get(texts[1])
    cache.get(texts[2])
    assert len(cache) == 2
    assert cache.get(texts[0]) is not first  # evicted, decoded again
    assert cache.get(texts[0]).envelope == first.envelope


async def test_woken_sessions_share_one_change_query(imap_env: ImapEnv) -> None:
    await imap_env.deliver(message(1))
    fid = await imap_env.folder_id(ALICE, "INBOX")
    store = SqlMailStore(imap_env.gateway.db, imap_env.gateway.changes)  # type: ignore[arg-type]
    with counted(imap_env) as statements:
        results = await asyncio.gather(*[store.changes_since(fid, 0) for _ in range(200)])
    assert all(r == results[0] for r in results)
    assert results[0][1] and results[0][1][0].uid == 1
    assert len([s for s in statements if "folder_messages" in s]) == 1

    # A change after the shared query started is never answered by it.
    first = asyncio.ensure_future(store.changes_since(fid, 0))
    await asyncio.sleep(0)
    await imap_env.deliver(message(2))
    second = await store.changes_since(fid, 0)
    await first
    assert [c.uid for c in second[1]] == [1, 2]


async def test_idle_sessions_are_all_notified(imap_env: ImapEnv) -> None:
    await imap_env.deliver(message(1))
    clients = []
    try:
        for _ in range(20):
            cm = connect(imap_env)
            client = await cm.__aenter__()
            clients.append((cm, client))
            await client.command("SELECT INBOX")
            client.writer.write(b"i IDLE\r\n")
            await client.writer.drain()
            assert (await client.reader.readline()).startswith(b"+")
        await imap_env.deliver(message(2))
        for _, client in clients:
            line = await asyncio.wait_for(client.reader.readline(), 5)
            assert line == b"* 2 EXISTS\r\n"
    finally:
        for cm, _ in clients:
            await cm.__aexit__(None, None, None)


async def test_recent_mark_goes_to_one_session_only(imap_env: ImapEnv) -> None:
    await imap_env.deliver(message(1))
    fid = await imap_env.folder_id(ALICE, "INBOX")
    store = SqlMailStore(imap_env.gateway.db, imap_env.gateway.changes)  # type: ignore[arg-type]
    with counted(imap_env) as statements:
        previous = await asyncio.gather(*[store.claim_recent(fid, 5) for _ in range(50)])
    assert sorted(previous) == [0] + [5] * 49  # exactly one claimer saw the old mark
    assert len([s for s in statements if s.lstrip().upper().startswith("UPDATE")]) == 1
    assert await store.claim_recent(fid, 3) == 5  # below the mark: nothing is recent
    assert await store.claim_recent(fid, 9) == 5
    assert await store.recent_floor(fid) == 9


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 60), unique=True), st.lists(st.integers(0, 100)),
       st.lists(st.integers(1, 10)))
def test_uid_list_behaves_as_a_sorted_list(start: list[int], deletes: list[int],
                                           gaps: list[int]) -> None:
    """Expunges (``del``), new mail (``extend``), indexing, slicing and lookups agree with a
    plain sorted list, whatever the holes."""
    model = sorted(start)
    uids = UidList(model)
    for d in deletes:
        if not model:
            break
        i = d % len(model)
        del model[i]
        del uids[i]
        assert list(uids) == model and len(uids) == len(model)
    top = model[-1] if model else 0
    new = []
    for gap in gaps:
        top += gap
        new.append(top)
    model += new
    uids.extend(new)
    assert list(uids) == model
    for i in range(-len(model), len(model)):
        assert uids[i] == model[i]
    for a in range(len(model) + 2):
        for b in range(a, len(model) + 2):
            assert uids[a:b] == model[a:b]
    for x in range(140):
        assert uids.index(x) == (model.index(x) if x in model else -1)
        assert uids.first_at_or_above(x) == bisect_left(model, x)
    if model:
        with pytest.raises(ValueError, match="not above the last known UID"):
            uids.extend([model[-1]])


def test_uid_list_of_a_dense_mailbox_is_small() -> None:
    uids = UidList(range(1, 5001))
    assert len(uids) == 5000 and uids[4999] == 5000
    assert sys.getsizeof(uids._starts) + sys.getsizeof(uids._lens) < 400


async def test_search_on_flags_is_narrowed_in_sql_with_the_same_answer(
    imap_env: ImapEnv,
) -> None:
    for n in range(1, 9):
        await imap_env.deliver(message(n))
    async with connect(imap_env) as client:
        await client.command("SELECT INBOX")
        await client.command("STORE 1:4 +FLAGS (\\Seen)")
        await client.command("STORE 2,3,6 +FLAGS (\\Flagged $Label10)")
        await client.command("STORE 7 +FLAGS ($label1)")
        assert b"* SEARCH 6\r\n" in await client.command("SEARCH UNSEEN FLAGGED")
        assert b"* SEARCH 2 3\r\n" in await client.command("SEARCH SEEN flagged")
        # Flags match case-insensitively and by whole word ($Label1 is not $Label10).
        assert b"* SEARCH 7\r\n" in await client.command("SEARCH KEYWORD $LABEL1")
        assert b"* SEARCH 2 3 6\r\n" in await client.command("SEARCH KEYWORD $label10")
        assert b"* SEARCH 1 4 5 7 8\r\n" in await client.command("SEARCH UNKEYWORD $Label10")
        assert b"* SEARCH 5 8\r\n" in await client.command(
            "SEARCH UNSEEN NOT FLAGGED UNKEYWORD $label1")
        assert b"* SEARCH 1 2 3 4 6\r\n" in await client.command("SEARCH OR SEEN FLAGGED")
        assert b"* SEARCH 1 4\r\n" in await client.command("SEARCH SEEN UNFLAGGED 1:5")


async def test_header_pages_are_served_from_the_span_cache(imap_env: ImapEnv) -> None:
    for n in range(1, 11):
        await imap_env.deliver(message(n))
    async with connect(imap_env) as client:
        await client.command("SELECT INBOX")
        cmd = "FETCH 1:10 (UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])"
        first = await client.command(cmd)
        with counted(imap_env) as statements:
            again = await client.command(cmd)
        assert again.rsplit(b"\r\n", 2)[0] == first.rsplit(b"\r\n", 2)[0]  # all but the tag
        assert again.count(b"Subject: Compte rendu") == 10
        assert not [s for s in statements if "blob_segments" in s]


def test_span_cache_is_bounded() -> None:
    cache = SpanCache(max_bytes=100, max_span=40)
    cache.put((1, 0, 50), b"x" * 50)  # larger than a span may be: not kept
    assert cache.get((1, 0, 50)) is None
    for n in range(5):
        cache.put((n, 0, 30), bytes([n]) * 30)
    assert cache.size <= 100 and len(cache) == 3
    assert cache.get((0, 0, 30)) is None and cache.get((4, 0, 30)) == b"\x04" * 30


async def test_flag_resync_fetch_matches_the_general_path(imap_env: ImapEnv) -> None:
    for n in range(1, 6):
        await imap_env.deliver(message(n), flags=("\\Flagged", "$Work") if n % 2 else ())
    async with connect(imap_env) as client:
        await client.command("SELECT INBOX")
        fast = await client.command("FETCH 1:* (UID FLAGS)")
        general = await client.command("FETCH 1:* (UID FLAGS INTERNALDATE)")
        only_flags = await client.command("FETCH 2:3 (FLAGS)")
        flags_uid = await client.command("FETCH 1 (FLAGS UID)")
    lines = [ln for ln in fast.split(b"\r\n") if ln.startswith(b"* ")]
    assert len(lines) == 5
    for ln, full in zip(lines, [x for x in general.split(b"\r\n") if x.startswith(b"* ")],
                        strict=True):
        assert full.startswith(ln[:-1] + b" INTERNALDATE ")
    assert lines[0] == b"* 1 FETCH (UID 1 FLAGS (\\Flagged $Work \\Recent))" or \
        lines[0] == b"* 1 FETCH (UID 1 FLAGS ($Work \\Flagged \\Recent))"
    assert b"* 2 FETCH (FLAGS (\\Recent))\r\n" in only_flags
    assert re.search(rb"\* 1 FETCH \(FLAGS \([^)]*\) UID 1\)", flags_uid)
