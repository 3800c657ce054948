"""Accounts, credentials, folders, messages and traces repositories on both engines."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from storage import accounts, credentials, folders, messages, meta, traces
from storage.database import Database
from storage.errors import AlreadyExists, NotFound
from storage.schema import folder_messages


async def _account(db: Database, address: str = "Dr.Martin@MSSante.test") -> accounts.Account:
    async with db.begin() as conn:
        return await accounts.create(
            conn,
            address=address,
            type="PER",
            display_name="Dr Martin",
            rpps="10001234567",
            settings={"lang": "fr"},
        )


async def test_accounts(database: Database) -> None:
    acc = await _account(database)
    assert acc.address == "dr.martin@mssante.test" and acc.status == "pending"
    assert acc.created_at.tzinfo is not None and acc.settings == {"lang": "fr"}
    async with database.begin() as conn:
        with pytest.raises(AlreadyExists, match="'dr.martin@mssante.test' already exists"):
            await accounts.create(conn, address="DR.MARTIN@mssante.test", type="PER")
        # the failed insert did not spoil the transaction (savepoint)
        assert await accounts.get_by_address(conn, "DR.martin@mssante.test") == acc
        await accounts.create(conn, address="secretariat@mssante.test", type="ORG")
        await accounts.set_status(conn, acc.id, "active")
        with pytest.raises(ValueError, match="invalid account status 'gone'"):
            await accounts.set_status(conn, acc.id, "gone")
        with pytest.raises(ValueError, match="invalid account type 'XYZ'"):
            await accounts.create(conn, address="x@mssante.test", type="XYZ")
        with pytest.raises(NotFound, match="account 424242 does not exist"):
            await accounts.set_status(conn, 424242, "active")
        got = await accounts.get_by_id(conn, acc.id)
        assert got is not None and got.status == "active"
        assert [a.address for a in await accounts.list_accounts(conn)] == [
            "dr.martin@mssante.test",
            "secretariat@mssante.test",
        ]
        assert [a.type for a in await accounts.list_accounts(conn, status="pending")] == ["ORG"]


async def test_credentials(database: Database) -> None:
    acc = await _account(database)
    async with database.begin() as conn:
        pw = await credentials.add(
            conn, acc.id, "app_password", label="Thunderbird", secret_hash="$argon2id$v=19$..."
        )
        cert = await credentials.add(conn, acc.id, "certificate", cert_fingerprint="AB:CD:EF")
        with pytest.raises(ValueError, match="invalid credential kind 'token'"):
            await credentials.add(conn, acc.id, "token", secret_hash="x")
        found = await credentials.find_by_cert_fingerprint(conn, "abcdef")
        assert found is not None and found.id == cert.id
        assert [c.id for c in await credentials.list_for_account(conn, acc.id)] == [pw.id, cert.id]
        assert await credentials.revoke(conn, cert.id) is True
        assert await credentials.revoke(conn, cert.id) is False
        with pytest.raises(NotFound):
            await credentials.revoke(conn, 999999)
        assert await credentials.find_by_cert_fingerprint(conn, "ab:cd:ef") is None
        assert [c.id for c in await credentials.list_for_account(conn, acc.id)] == [pw.id]
        await credentials.touch(conn, pw.id)
        assert (await credentials.get(conn, pw.id)).last_used_at is not None


async def test_folders(database: Database) -> None:
    acc = await _account(database)
    async with database.begin() as conn:
        made = await folders.create_default_folders(conn, acc.id)
        assert {f.name: f.special_use for f in made} == {
            "Archive": "\\Archive",
            "Drafts": "\\Drafts",
            "INBOX": None,
            "Sent": "\\Sent",
            "Trash": "\\Trash",
        }
        assert len({f.uidvalidity for f in made}) == 5
        with pytest.raises(AlreadyExists, match="folder 'INBOX' already exists"):
            await folders.create(conn, acc.id, "inbox")
        proj = await folders.create(conn, acc.id, "Projets")
        await folders.create(conn, acc.id, "Projets/2026")
        await folders.rename(conn, proj.id, "Dossiers")
        names = [f.name for f in await folders.list_folders(conn, acc.id)]
        assert "Dossiers/2026" in names and "Projets" not in names
        with pytest.raises(ValueError, match="invalid folder name '/x'"):
            await folders.create(conn, acc.id, "/x")
        await folders.delete_folder(conn, proj.id)
        again = await folders.create(conn, acc.id, "Dossiers")
        assert again.uidvalidity != proj.uidvalidity  # RFC 9051 §2.3.1.1
        inbox = await folders.get(conn, acc.id, "INBOX")
        assert inbox is not None
        assert await folders.allocate_uids(conn, inbox.id, 3) == 1
        assert await folders.allocate_uids(conn, inbox.id, 1) == 4
        assert await folders.next_modseq(conn, inbox.id) == 2
        # Both at once (COPY): the next UIDs and the next MODSEQ.
        assert await folders.reserve(conn, inbox.id, 2) == (5, 3)
        assert await folders.allocate_uids(conn, inbox.id, 1) == 7
        with pytest.raises(NotFound):
            await folders.allocate_uids(conn, 999999, 1)
        with pytest.raises(NotFound):
            await folders.reserve(conn, 999999, 1)


async def test_concurrent_uid_allocation(database: Database) -> None:
    acc = await _account(database)
    async with database.begin() as conn:
        inbox = await folders.create(conn, acc.id, "INBOX")

    async def take() -> int:
        async with database.begin() as conn:
            return await folders.allocate_uids(conn, inbox.id, 2)

    firsts = await asyncio.gather(*(take() for _ in range(10)))
    assert sorted(firsts) == list(range(1, 21, 2))


async def test_messages_in_folders(database: Database) -> None:
    acc = await _account(database)
    date = datetime(2026, 3, 1, 8, 30, tzinfo=UTC)
    async with database.begin() as conn:
        inbox = await folders.create(conn, acc.id, "INBOX")
        ids = []
        for i in range(3):
            ref = await database.blobs.put(conn, f"Subject: {i}\r\n\r\nbody {i}\r\n".encode())
            ids.append(
                await messages.insert_message(
                    conn,
                    blob_id=ref.id,
                    content_sha256=ref.content_sha256,
                    size=ref.size,
                    header_size=14,
                    internal_date=date,
                    message_id_header=f"<{i}@mssante.test>",
                    sealed_view=b"sealed-%d" % i,
                )
            )
        placed = await messages.add_to_folder(conn, inbox.id, ids, flags=["\\Recent", "$X"])
        assert placed == [(1, 2), (2, 2), (3, 2)]
    async with database.read() as conn:
        rows = await messages.fetch_range(conn, inbox.id, 2)
        assert [(r.uid, r.flags, r.sealed_view) for r in rows] == [
            (2, ("$X", "\\Recent"), b"sealed-1"),
            (3, ("$X", "\\Recent"), b"sealed-2"),
        ]
        assert rows[0].internal_date == date
        assert await database.blobs.read(conn, rows[0].blob_id) == b"Subject: 1\r\n\r\nbody 1\r\n"
    async with database.begin() as conn:
        m1 = await messages.set_flags(conn, inbox.id, [1], ["\\Seen"])
        m2 = await messages.expunge(conn, inbox.id, [2])
        assert [r.uid for r in await messages.fetch_range(conn, inbox.id, changed_since=2)] == [1]
        assert [r.uid for r in await messages.fetch_range(conn, inbox.id)] == [1, 3]
        assert await messages.vanished_since(conn, inbox.id, m1) == [2]
        assert m2 == m1 + 1
        tomb = (
            await conn.execute(
                select(folder_messages.c.expunged_modseq).where(folder_messages.c.uid == 2)
            )
        ).scalar()
        assert tomb == m2


async def test_traces_and_meta(database: Database) -> None:
    async with database.begin() as conn:
        await traces.record(
            conn,
            session_id="s1",
            service="imap",
            event="auth",
            detail={"mechanism": "EXTERNAL", "client": "Thunderbird"},
        )
        await traces.record(conn, session_id="s2", service="smtp", event="connect")
        got = await traces.for_session(conn, "s1")
        assert [(t.event, t.detail["client"]) for t in got] == [("auth", "Thunderbird")]
        assert [t.session_id for t in await traces.recent(conn, limit=1)] == ["s2"]
        assert await meta.get_value(conn, "master_key_id") == database.keyring.active_key_id
        assert await meta.next_counter(conn, "c") == 1
        assert await meta.next_counter(conn, "c") == 2


async def test_naive_datetime_refused(database: Database) -> None:
    async with database.begin() as conn:
        with pytest.raises(Exception, match="naive datetime .* refused"):
            await messages.insert_message(
                conn,
                blob_id=(await database.blobs.put(conn, b"x")).id,
                content_sha256="0",
                size=1,
                header_size=0,
                internal_date=datetime(2026, 1, 1),
            )


async def test_type_and_address_never_change(sqlite_database: Database) -> None:
    async with sqlite_database.begin() as conn:
        acc = await accounts.create(conn, address="fixe@mssante.test", type="PER")
        for field in ("type", "address"):
            with pytest.raises(ValueError, match=field):
                await accounts.update_fields(conn, acc.id, **{field: "ORG"})
