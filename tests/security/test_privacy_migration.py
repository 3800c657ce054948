"""Issue 9 item 7: migration 0003 seals the metadata an existing database holds in clear.

A database at revision 0002 with a message whose Subject, From text and attachment file
name carry a marker (search columns and IMAP view in clear) is opened by this version: the
rows are sealed under the body's data key, the clear columns are gone, IMAP still serves
the same view and search fields, and (SQLite) no byte of the file or its WAL still holds
the marker. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from alembic import command

from config.settings import Settings
from mail.changes import ChangeHub
from mail.views import build_view
from mailstore.store import SqlMailStore
from storage import accounts, folders
from storage import messages as message_rows
from storage.blobs import BlobStore
from storage.database import open_database
from storage.engine import create_engine
from storage.keys import load_or_create_keyring
from storage.migrate import alembic_config, current_revision, head_revision
from storage.types import UTCDateTime, canonical_json

MARKER = "Qz7MIGRATIONDUPONT"
RAW = (
    f"From: {MARKER} Expediteur <dr.a@ch-exemple.mssante.fr>\r\n"
    "To: <mig@mssante.test>\r\n"
    f"Subject: CR patient {MARKER}\r\n"
    "Date: Tue, 01 Dec 2026 10:00:00 +0100\r\n"
    "Message-ID: <mig.1@ch-exemple.mssante.fr>\r\n"
    "MIME-Version: 1.0\r\n"
    'Content-Type: multipart/mixed; boundary="b"\r\n'
    "\r\n--b\r\nContent-Type: text/plain\r\n\r\nCorps.\r\n"
    f'--b\r\nContent-Type: application/pdf; name="{MARKER}.pdf"\r\n'
    f'Content-Disposition: attachment; filename="{MARKER}.pdf"\r\n'
    "\r\nJVBERi0K\r\n--b--\r\n"
).encode()

OLD_MESSAGES = sa.table(
    "messages", sa.column("id"), sa.column("blob_id"), sa.column("message_id_header"),
    sa.column("content_sha256"), sa.column("size"), sa.column("header_size"),
    sa.column("internal_date", UTCDateTime()), sa.column("received_at", UTCDateTime()),
    sa.column("view"),
    sa.column("subject"), sa.column("from_addr"), sa.column("to_addr"), sa.column("cc_addr"),
    sa.column("date_header"),
)
"""The message table as revision 0002 left it (clear columns)."""


async def _database_at_0002(settings: Settings) -> tuple[int, int]:
    """A 0002 database with one account, its INBOX and one message stored as 0002 did;
    returns (folder id, message id)."""
    engine = create_engine(settings)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda c: command.upgrade(alembic_config(c), "0002"))
        store = BlobStore(load_or_create_keyring(settings.key_file, may_create=True), 65536)
        view = build_view(RAW)
        s = view.search
        async with engine.begin() as conn:
            ref = await store.put(conn, RAW)
            when = datetime(2026, 12, 1, 9, tzinfo=UTC)
            result = await conn.execute(OLD_MESSAGES.insert().values(
                blob_id=ref.id, message_id_header=s.message_id, content_sha256=ref.content_sha256,
                size=len(RAW), header_size=s.header_size, internal_date=when, received_at=when,
                view=canonical_json(view.to_json()), subject=s.subject, from_addr=s.from_,
                to_addr=s.to, cc_addr=s.cc, date_header=s.sent_date,
            ).returning(OLD_MESSAGES.c.id))
            message_id = int(result.scalar_one())
            account = await accounts.create(conn, address="mig@mssante.test", type="PER")
            inbox = await folders.create(conn, account.id, "INBOX")
            await message_rows.add_to_folder(conn, inbox.id, [message_id],
                                             internal_date=datetime(2026, 12, 1, tzinfo=UTC))
        assert await current_revision(engine) == "0002"
        return inbox.id, message_id
    finally:
        await engine.dispose()


def _sqlite_hits(settings: Settings) -> list[str]:
    path = Path(sa.engine.make_url(settings.database_url).database or "")
    found = []
    for candidate in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        if candidate.exists() and MARKER.lower().encode() in candidate.read_bytes().lower():
            found.append(candidate.name)
    return found


async def test_0003_seals_existing_metadata_and_imap_still_serves_it(
    db_settings: Settings,
) -> None:
    folder_id, message_id = await _database_at_0002(db_settings)
    sqlite = db_settings.database_url.startswith("sqlite")
    if sqlite:
        assert _sqlite_hits(db_settings), "the 0002 database holds the marker in clear"
    db = await open_database(db_settings, may_create_key=False)
    try:
        assert await current_revision(db.engine) == head_revision()
        async with db.engine.connect() as conn:
            columns = await conn.run_sync(
                lambda c: {col["name"] for col in sa.inspect(c).get_columns("messages")})
        assert {"sealed_view", "sealed_fields"} <= columns
        assert not columns & {"view", "subject", "from_addr", "to_addr", "cc_addr"}
        store = SqlMailStore(db, ChangeHub())
        [row] = await store.fetch_rows(folder_id, [(1, 10)], full=True, search=True)
        assert row.message_id == message_id
        assert row.view == build_view(RAW)
        assert row.subject == f"CR patient {MARKER}"
        assert row.from_addr == f"{MARKER} Expediteur <dr.a@ch-exemple.mssante.fr>"
        assert row.date_header == "2026-12-01"
        assert MARKER.encode() in row.view.bodystructure.encode()
        fields = await store.header_fields([message_id])
        assert fields[message_id][0] == f"cr patient {MARKER}".casefold()
    finally:
        await db.close()
    if sqlite:
        assert _sqlite_hits(db_settings) == []
