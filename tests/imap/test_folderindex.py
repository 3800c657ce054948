"""The in-memory folder index (mailstore/folderindex.py): always the same answer as the database,
brought up to date by MODSEQ, no query while nothing changed, bounded memory, and SEARCH
answered from it exactly as from the stored rows."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select, update

import mailstore.folderindex as folderindex
from mailstore.sorting import SortKey, sort_folder
from mailstore.store import Change, MessageRow, SqlMailStore
from storage import folders as folder_rows
from storage.schema import folder_messages, folders, messages
from tests.fixtures.imap import ALICE, ImapEnv, message
from tests.imap.test_perf_paths import connect, counted


def _store(env: ImapEnv, **kw: int) -> SqlMailStore:
    db = env.gateway.db
    assert db is not None
    return SqlMailStore(db, env.gateway.changes, **kw)


def _key(rows: list[MessageRow]) -> list[tuple[int, int, tuple[str, ...]]]:
    return [(r.uid, r.modseq, tuple(sorted(r.flags))) for r in rows]


async def _same_as_database(store: SqlMailStore, fid: int) -> list[int]:
    from_db = await store.fetch_rows(fid, [(1, 10**9)], full=False)
    from_index = await store.index_rows(fid, [(1, 10**9)])
    assert _key(from_index) == _key(from_db)
    return [r.uid for r in from_index]


async def test_index_follows_every_kind_of_change(imap_env_any_db: ImapEnv) -> None:
    imap_env = imap_env_any_db
    for n in range(1, 11):
        await imap_env.deliver(message(n))
    fid = await imap_env.folder_id(ALICE, "INBOX")
    archive = await imap_env.folder_id(ALICE, "Archive")
    store = _store(imap_env)
    assert await _same_as_database(store, fid) == list(range(1, 11))

    await store.store_flags(fid, {2: ("\\Seen",), 3: ("\\Flagged", "$Label1")})
    await store.expunge(fid, [4, 5])
    await store.copy(fid, [6], archive, move=True)
    await store.copy(fid, [7], archive)
    await imap_env.deliver(message(11))
    assert await _same_as_database(store, fid) == [1, 2, 3, 7, 8, 9, 10, 11]
    assert await _same_as_database(store, archive) == [1, 2]

    info, entries = await store.snapshot(fid)
    assert list(entries) == [1, 2, 3, 7, 8, 9, 10, 11]
    assert entries[3][1] == ("$Label1", "\\Flagged")
    assert info.uidnext == 12
    async with imap_env.gateway.db.read() as conn:  # type: ignore[union-attr]
        row = await folder_rows.get(conn, 1, "INBOX")
    assert row is not None and info.highestmodseq == row.highestmodseq

    # Ranges, sparse ranges and CHANGEDSINCE give what the stored rows give.
    for ranges in ([(2, 3)], [(1, 1), (8, 9)], [(5, 6)], [(11, 500)], [(3, 3), (10, 10)]):
        got = await store.index_rows(fid, ranges)
        want = await store.fetch_rows(fid, ranges, full=False)
        assert _key(got) == _key(want), ranges
    since = info.highestmodseq - 3
    got = await store.index_rows(fid, [(1, 10**9)], changed_since=since)
    want = await store.fetch_rows(fid, [(1, 10**9)], full=False, changed_since=since)
    assert _key(got) == _key(want) and got


async def test_unchanged_folder_costs_no_query(imap_env: ImapEnv) -> None:
    for n in range(1, 6):
        await imap_env.deliver(message(n))
    fid = await imap_env.folder_id(ALICE, "INBOX")
    store = _store(imap_env)
    await store.index_rows(fid, [(1, 5)])
    with counted(imap_env) as statements:
        for _ in range(20):
            assert len(await store.index_rows(fid, [(1, 5)])) == 5
    assert statements == []

    # A notified change: one look at the folder row and one for the rows above the MODSEQ.
    await store.store_flags(fid, {1: ("\\Seen",)})
    with counted(imap_env) as statements:
        rows = await store.index_rows(fid, [(1, 5)])
    assert rows[0].flags == ("\\Seen",)
    queries = [s for s in statements if s.startswith("SELECT")]
    assert len(queries) == 2
    assert "modseq >" in queries[1]


async def test_change_not_notified_is_seen_after_the_recheck_delay(
    imap_env: ImapEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process (an offline tool) writes without telling this one."""
    monkeypatch.setattr(folderindex, "QUIET_RECHECK", 0.2)
    await imap_env.deliver(message(1))
    fid = await imap_env.folder_id(ALICE, "INBOX")
    store = _store(imap_env)
    assert (await store.index_rows(fid, [(1, 1)]))[0].flags == ()
    db = imap_env.gateway.db
    assert db is not None
    async with db.begin() as conn:
        modseq = await folder_rows.next_modseq(conn, fid)
        await conn.execute(update(folder_messages).where(
            folder_messages.c.folder_id == fid, folder_messages.c.uid == 1,
        ).values(flags="\\Answered", modseq=modseq))
    assert (await store.index_rows(fid, [(1, 1)]))[0].flags == ()  # not told yet
    await asyncio.sleep(0.3)
    rows = await store.index_rows(fid, [(1, 1)])
    assert rows[0].flags == ("\\Answered",) and rows[0].modseq == modseq


async def test_memory_is_bounded_and_deleted_folders_are_dropped(imap_env: ImapEnv) -> None:
    store = _store(imap_env, index_messages=1000)
    ids = []
    for i in range(4):
        created = await store.create_folder(1, f"Dossier{i}")
        ids.append(created.id)
    db = imap_env.gateway.db
    assert db is not None
    for fid in ids:
        for n in range(400):
            await imap_env.deliver(message(n), folder=f"Dossier{ids.index(fid)}")
        assert len(await store.index_rows(fid, [(1, 10**9)])) == 400
        assert store.indexes.messages <= 1000 or len(store.indexes) == 1
    assert store.indexes.messages <= 1000
    assert store.indexes.messages == sum(len(i) for i in store.indexes._indexes.values())
    assert len(store.indexes) == 2  # the two most recently used
    # An evicted folder comes back whole.
    assert len(await store.index_rows(ids[0], [(1, 10**9)])) == 400

    await store.expunge(ids[0], [1, 2, 3])
    assert len(await store.index_rows(ids[0], [(1, 10**9)])) == 397
    assert store.indexes.messages == sum(len(i) for i in store.indexes._indexes.values())
    await store.delete_folder(ids[0])
    with pytest.raises(LookupError):
        await store.index_rows(ids[0], [(1, 10**9)])
    assert ids[0] not in store.indexes._indexes


async def test_search_answered_from_the_index_matches_stored_rows(
    imap_env_any_db: ImapEnv,
) -> None:
    imap_env = imap_env_any_db
    subjects = ["Avis cardiologie", "Compte rendu", "RÉSULTATS biologie", "avis urgent"]
    for n, subject in enumerate(subjects, 1):
        await imap_env.deliver(message(n, subject=subject))
    fid = await imap_env.folder_id(ALICE, "INBOX")
    store = _store(imap_env)
    await store.store_flags(fid, {1: ("\\Flagged",), 3: ("\\Seen", "\\Flagged")})
    async with connect(imap_env) as client:
        await client.command("SELECT INBOX")
        cases = {
            'SEARCH SUBJECT "avis"': b"* SEARCH 1 4\r\n",
            'SEARCH SUBJECT "résultats"': b"* SEARCH 3\r\n",
            "SEARCH UNSEEN FLAGGED": b"* SEARCH 1\r\n",
            'SEARCH OR FLAGGED SUBJECT "urgent"': b"* SEARCH 1 3 4\r\n",
            'SEARCH NOT FROM "bob" ALL': b"* SEARCH\r\n",
            'SEARCH FROM "Dr Bob" 2:4 UNSEEN': b"* SEARCH 2 4\r\n",
            # Not answerable from the index (dates, body): the stored rows answer.
            'SEARCH BODY "document 2"': b"* SEARCH 2\r\n",
            'SEARCH SUBJECT "avis" SENTBEFORE 1-Jan-2030': b"* SEARCH 1 4\r\n",
        }
        for command, expected in cases.items():
            reply = await client.command(command)
            assert reply.splitlines(keepends=True)[0] == expected, command
    fields = await store.header_fields([1, 2])
    assert fields[1][0] == "avis cardiologie"  # casefolded once, as SEARCH compares
    assert "bob@mssante.test" in fields[1][1]


async def test_storage_used_sums_again_only_changed_folders(imap_env_any_db: ImapEnv) -> None:
    imap_env = imap_env_any_db
    for n in range(1, 6):
        await imap_env.deliver(message(n))
        await imap_env.deliver(message(100 + n, body="x" * 1000), folder="Archive")
    inbox = await imap_env.folder_id(ALICE, "INBOX")
    store = _store(imap_env)
    db = imap_env.gateway.db
    assert db is not None

    async def reference() -> int:
        async with db.read() as conn:
            rows = await conn.execute(
                select(func.coalesce(func.sum(messages.c.size), 0))
                .select_from(folder_messages.join(
                    messages, messages.c.id == folder_messages.c.message_id))
                .where(folder_messages.c.folder_id.in_(select(folders.c.id).where(
                    folders.c.account_id == 1)), folder_messages.c.expunged_modseq.is_(None)))
            return int(rows.scalar_one())

    assert await store.storage_used(1) == await reference() > 5000
    await store.expunge(inbox, [1, 2])
    with counted(imap_env) as statements:
        used = await store.storage_used(1)
    assert used == await reference()
    sums = [s for s in statements if "sum(" in s.lower()]
    # INBOX only, by its changed rows (on PostgreSQL a read is seen by two engine listeners).
    assert len(set(sums)) == 1 and "folder_messages.folder_id = " in sums[0]
    assert "folder_messages.modseq > " in sums[0]
    with counted(imap_env) as statements:
        assert await store.storage_used(1) == used
    assert not [s for s in statements if "sum(" in s.lower()]


async def test_storage_used_stays_exact_through_every_change(imap_env_any_db: ImapEnv) -> None:
    """The running totals follow APPEND (pipeline), COPY, MOVE, EXPUNGE, retention purge and
    a second store (another worker) writing the same folders, each total equal to a fresh
    sum; a changed folder is brought up to date by its changed rows, never summed again."""
    from datetime import timedelta

    from mail.retention import purge_expired
    from storage.types import utcnow

    imap_env = imap_env_any_db
    db = imap_env.gateway.db
    assert db is not None
    for n in range(1, 6):
        await imap_env.deliver(message(n, body="y" * (100 * n)))
    inbox = await imap_env.folder_id(ALICE, "INBOX")
    archive = await imap_env.folder_id(ALICE, "Archive")
    store, other = _store(imap_env), _store(imap_env)

    async def reference() -> int:
        async with db.read() as conn:  # type: ignore[union-attr]
            rows = await conn.execute(
                select(func.coalesce(func.sum(messages.c.size), 0))
                .select_from(folder_messages.join(
                    messages, messages.c.id == folder_messages.c.message_id))
                .where(folder_messages.c.folder_id.in_(select(folders.c.id).where(
                    folders.c.account_id == 1)), folder_messages.c.expunged_modseq.is_(None)))
            return int(rows.scalar_one())

    async def exact(s: SqlMailStore) -> int:
        with counted(imap_env) as statements:
            used = await s.storage_used(1)
        assert used == await reference()
        full = [q for q in statements if "sum(" in q.lower() and "case" not in q.lower()]
        assert not full, full  # differences only, once a total is held
        return used

    assert await store.storage_used(1) == await other.storage_used(1) == await reference()
    await imap_env.deliver(message(6, body="z" * 700))  # APPEND / delivery
    before = await exact(store)
    await store.copy(inbox, [1, 2], archive)  # COPY
    assert await exact(store) > before
    await other.copy(inbox, [3], archive, move=True)  # MOVE by another worker
    await exact(store)
    await exact(other)
    await other.expunge(inbox, [4])  # EXPUNGE by another worker
    await store.store_flags(inbox, {5: ("\\Seen",)})  # a flag change alone: no change
    await exact(store)
    await store.expunge(archive, [1])
    await exact(store)
    await exact(other)
    # Retention purge tombstones every copy of the expired messages.
    later = utcnow() + timedelta(days=db.settings.storage.body_retention_days + 1)
    assert (await purge_expired(db, imap_env.gateway.changes, now=later, pause=0)).purged
    assert await exact(store) == await exact(other) == 0


async def test_status_counters_come_from_the_index(imap_env_any_db: ImapEnv) -> None:
    """STATUS without SIZE: the same MESSAGES/UNSEEN/DELETED/RECENT as counting the rows,
    after every kind of change, and no query over the rows while nothing changed."""
    imap_env = imap_env_any_db
    for n in range(1, 8):
        await imap_env.deliver(message(n), flags=("\\Seen",) if n % 2 else ())
    inbox = await imap_env.folder_id(ALICE, "INBOX")
    archive = await imap_env.folder_id(ALICE, "Archive")
    store = _store(imap_env)

    async def same() -> None:
        for fid in (inbox, archive):
            for floor in (None, 0, 3):
                fast = await store.counts(fid, floor, size=False)
                slow = await store.counts(fid, floor)
                assert (fast.messages, fast.unseen, fast.deleted, fast.recent) == (
                    slow.messages, slow.unseen, slow.deleted, slow.recent), (fid, floor)

    await same()
    await store.store_flags(inbox, {2: ("\\Seen", "\\Deleted"), 3: ("$Label1",)})
    await same()
    await store.expunge(inbox, [1])
    await store.copy(inbox, [2, 4], archive)
    await store.copy(inbox, [5], archive, move=True)
    await imap_env.deliver(message(9))
    await store.claim_recent(inbox, 8)
    await same()
    await store.counts(inbox, size=False)
    with counted(imap_env) as statements:
        counts = await store.counts(inbox, size=False)
    assert counts.messages == 6 and counts.deleted == 1
    assert not [q for q in statements if "folder_messages" in q], statements


async def test_change_log_answers_as_the_database(
    imap_env_any_db: ImapEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a session is told (RFC 3501 §5.2) is the same from the log as from the rows,
    for every starting MODSEQ the log reaches, also once it has been cut."""
    monkeypatch.setattr(folderindex, "CHANGE_LOG", 4)
    imap_env = imap_env_any_db
    for n in range(1, 9):
        await imap_env.deliver(message(n))
    fid = await imap_env.folder_id(ALICE, "INBOX")
    archive = await imap_env.folder_id(ALICE, "Archive")
    store = _store(imap_env)
    start = (await store.snapshot(fid))[0].highestmodseq
    assert store.indexes.holds(fid)

    async def check_all() -> None:
        index = await store.indexes.get(fid)
        assert index is not None
        def told(answer: tuple[int, list[Change]]) -> tuple[int, list[tuple[object, ...]]]:
            # The flags of an expunged message are never reported: not compared.
            return answer[0], [(c.uid, c.modseq, () if c.expunged else c.flags, c.expunged)
                               for c in answer[1]]

        for since in range(0, index.modseq + 2):
            expected = told(await store._changes_since(fid, since))
            assert told(await store.changes_since(fid, since)) == expected, since
        assert index.log_floor >= start

    await store.store_flags(fid, {1: ("\\Seen",), 2: ("\\Seen",)})
    await store.store_flags(fid, {1: ("\\Flagged",)})
    await store.expunge(fid, [3])
    await check_all()
    await store.copy(fid, [4, 5], archive, move=True)
    await imap_env.deliver(message(9))
    await store.store_flags(fid, {6: ("\\Answered",), 7: ("\\Draft",), 9: ("\\Seen",)})
    await store.expunge(fid, [9])
    await check_all()
    for i in range(6):  # one change per refresh: the log (4, at most 8) is cut
        await store.store_flags(fid, {8: ("\\Seen",) if i % 2 else ("\\Flagged",)})
        await store.indexes.get(fid)
    await check_all()
    index = await store.indexes.get(fid)
    assert index is not None and index.log_floor > start  # cut: older asks go to the rows
    with counted(imap_env) as statements:
        await store.changes_since(fid, index.log_floor)
    assert not [s for s in statements if "folder_messages" in s]


async def test_flags_are_computed_from_the_flags_as_written(imap_env: ImapEnv) -> None:
    """change_flags reads and writes in one transaction: a change made by another session
    before it is seen, and a refusal raised by the computation writes nothing."""
    for n in (1, 2):
        await imap_env.deliver(message(n))
    fid = await imap_env.folder_id(ALICE, "INBOX")
    store = _store(imap_env)
    await store.store_flags(fid, {1: ("\\Flagged",)})  # another session, before
    seen: list[tuple[int, tuple[str, ...]]] = []

    def add_seen(uid: int, modseq: int, flags: tuple[str, ...]) -> tuple[str, ...] | None:
        seen.append((uid, flags))
        return None if uid == 2 else (*flags, "\\Seen")

    modseq, state = await store.change_flags(fid, [1, 2, 99], add_seen)
    assert seen == [(1, ("\\Flagged",)), (2, ())]
    assert state[1] == (modseq, ("\\Flagged", "\\Seen")) and state[2][0] < modseq
    assert 99 not in state

    def refuse(uid: int, modseq: int, flags: tuple[str, ...]) -> tuple[str, ...] | None:
        if uid == 2:
            raise PermissionError("no")
        return ("\\Deleted",)

    with pytest.raises(PermissionError):
        await store.change_flags(fid, [1, 2], refuse)
    rows = await store.fetch_rows(fid, [(1, 2)], full=False)
    assert [r.flags for r in rows] == [("\\Flagged", "\\Seen"), ()]


async def test_concurrent_sessions_adding_flags_lose_none(imap_env: ImapEnv) -> None:
    await imap_env.deliver(message(1))

    async def session(prefix: str) -> None:
        async with connect(imap_env) as client:
            await client.command("SELECT INBOX")
            for n in range(15):
                await client.command(f"STORE 1 +FLAGS.SILENT (${prefix}{n})")

    await asyncio.gather(session("A"), session("B"), session("C"))
    async with connect(imap_env) as client:
        await client.command("SELECT INBOX")
        reply = await client.command("FETCH 1 (FLAGS)")
    for prefix in "ABC":
        for n in range(15):
            assert f"${prefix}{n}".encode() in reply, (prefix, n)


def _dated(n: int, date: str | None) -> bytes:
    raw = message(n)
    fixed = b"Date: Mon, 6 Jan 2025 10:00:00 +0100\r\n"
    return raw.replace(fixed, b"" if date is None else f"Date: {date}\r\n".encode())


async def test_date_order_follows_arrivals_and_expunges_as_sort_date(
        imap_env: ImapEnv) -> None:
    """The index's date order (the webmail's list) is RFC 5256 SORT DATE's, kept up to date
    by insertion as messages come and by removal as they go."""
    hours = [5, 1, 4, 2, 6, 3]
    for n, h in enumerate(hours, start=1):
        await imap_env.deliver(_dated(n, f"Mon, 6 Jan 2025 {h:02d}:00:00 +0000"))
    fid = await imap_env.folder_id(ALICE, "INBOX")
    store = _store(imap_env)
    order = await store.date_order(fid)
    assert list(order.uids) == [2, 4, 6, 3, 1, 5]
    await store.expunge(fid, [3])
    await imap_env.deliver(_dated(7, "Mon, 6 Jan 2025 00:30:00 +0000"))  # the oldest
    await imap_env.deliver(_dated(8, "Mon, 6 Jan 2025 02:00:00 +0000"))  # ties with 4
    await imap_env.deliver(_dated(9, None))  # no Date: its arrival, the newest
    await imap_env.deliver(_dated(10, "Mon, 6 Jan 2025 05:00:00 -0100"))  # 06:00 UTC
    # Valid, and past the last instant a timestamp holds: stored, the newest of all.
    await imap_env.deliver(_dated(11, "Fri, 31 Dec 9999 23:59:59 -1200"))
    order = await store.date_order(fid)
    assert list(order.uids) == [7, 2, 4, 8, 6, 1, 5, 10, 9, 11]
    assert order.key(10) == (1736143200, 10)
    assert list(order.uids) == await sort_folder(store, fid, [SortKey("DATE")])
    assert list((await _store(imap_env).date_order(fid)).uids) == list(order.uids)


async def test_lists_opened_together_read_the_sent_instants_once(imap_env: ImapEnv) -> None:
    """Ten lists of one folder opened at once (people of a shared box after a start) make
    its date order once: one query of the sent instants, not one each."""
    for n in range(1, 31):
        await imap_env.deliver(_dated(n, f"Mon, 6 Jan 2025 {n % 24:02d}:00:00 +0000"))
    fid = await imap_env.folder_id(ALICE, "INBOX")
    store = _store(imap_env)
    await store.index_entries(fid)  # the index itself loaded: only the order is left
    with counted(imap_env) as statements:
        orders = await asyncio.gather(*(store.date_order(fid) for _ in range(10)))
    assert len([s for s in statements if "sent_at" in s]) == 1, statements
    assert all(list(o.uids) == list(orders[0].uids) for o in orders)
    assert len(orders[0].uids) == 30
