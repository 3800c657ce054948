"""The database part of a backup: a consistent online snapshot, and putting it back.

SQLite: :meth:`sqlite3.Connection.backup` copies every page in one step under one read
transaction, so with WAL the copy is the database as of one commit while the gateway keeps
writing (writers are never blocked by a WAL reader). PostgreSQL: ``pg_dump -Fc`` (one
repeatable-read snapshot), restored with ``pg_restore`` into an empty database. The password
goes through ``PGPASSWORD`` in the child's environment, never on its command line, where
``ps`` would show it to every local user.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL, make_url

COUNTED_TABLES = ("accounts", "messages", "proofs")
"""Row counts recorded in the manifest: what an operator checks first after a restore."""

SQLITE_FILE = "mssante.db"
PG_DUMP_FILE = "database.pgdump"


class BackupError(Exception):
    """A backup or restore step failed; the message says which and why, for the operator."""


@dataclass(frozen=True)
class DatabaseSnapshot:
    """What the database part of a backup produced."""

    engine: str  # "sqlite" or "postgresql"
    file: Path
    schema_revision: str | None
    counts: dict[str, int]


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def sqlite_path(url: str) -> Path:
    """The database file of a ``sqlite+aiosqlite:///path`` URL."""
    database = make_url(url).database
    if not database or database == ":memory:":
        raise BackupError(f"the SQLite URL {url!r} names no database file")
    return Path(database)


def _sqlite_facts(path: Path) -> tuple[str | None, dict[str, int]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        try:
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        except sqlite3.OperationalError:
            row = None
        counts = {
            table: int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # noqa: S608
            for table in COUNTED_TABLES
        }
    finally:
        conn.close()
    return (row[0] if row else None), counts


def snapshot_sqlite(source: Path, dest: Path, busy_timeout_ms: int = 10000) -> DatabaseSnapshot:
    """Copies the live SQLite database ``source`` to ``dest`` (created 0600), consistently.

    ``pages=-1``: the whole database in one step, so no concurrent commit can make the
    copy restart or mix two states.
    """
    if not source.exists():
        raise BackupError(f"the database file {source} does not exist")
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=busy_timeout_ms / 1000)
    dst = sqlite3.connect(dest)
    try:
        src.backup(dst, pages=-1)
        # A self-contained file: no -wal beside it is needed to read the copy.
        dst.execute("PRAGMA journal_mode=DELETE")
    finally:
        dst.close()
        src.close()
    os.chmod(dest, 0o600)
    revision, counts = _sqlite_facts(dest)
    return DatabaseSnapshot("sqlite", dest, revision, counts)


def restore_sqlite(snapshot: Path, target: Path) -> None:
    """Puts a snapshot back as the database file (the target must not exist yet)."""
    if target.exists():
        raise BackupError(f"the database file {target} already exists")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(snapshot, target)
    os.chmod(target, 0o600)


# -- PostgreSQL ----------------------------------------------------------------------------


def _pg_env(url: URL) -> dict[str, str]:
    """libpq environment for ``url``: the password never appears in an argument list."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    if url.host:
        env["PGHOST"] = url.host
    if url.port:
        env["PGPORT"] = str(url.port)
    if url.username:
        env["PGUSER"] = url.username
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    if url.database:
        env["PGDATABASE"] = url.database
    return env


def _run(command: list[str], env: dict[str, str], what: str) -> str:
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise BackupError(f"{what}: {command[0]} is not installed "
                          "(apt-get install postgresql-client)") from None
    if done.returncode != 0:
        detail = " ".join(done.stderr.split())[-400:]
        raise BackupError(f"{what} failed (exit {done.returncode}): {detail}")
    return done.stdout


def _psql_value(url: URL, sql: str) -> str:
    return _run(["psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql],
                _pg_env(url), "psql").strip()


def snapshot_postgres(url_text: str, dest: Path) -> DatabaseSnapshot:
    """``pg_dump -Fc`` of the configured database into ``dest`` (0600)."""
    url = make_url(url_text)
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    _run(["pg_dump", "-Fc", "--no-owner", "-f", str(dest)], _pg_env(url), "pg_dump")
    os.chmod(dest, 0o600)
    revision = _psql_value(url, "SELECT version_num FROM alembic_version") or None
    counts = {t: int(_psql_value(url, f"SELECT count(*) FROM {t}"))  # noqa: S608
              for t in COUNTED_TABLES}
    return DatabaseSnapshot("postgresql", dest, revision, counts)


def database_name(url_text: str) -> str:
    """``'name' on host:port``, for messages (never the password)."""
    url = make_url(url_text)
    return f"{url.database!r} on {url.host}:{url.port or 5432}"


def postgres_table_count(url_text: str) -> int:
    """Tables in the public schema of the configured database (0: empty, may restore)."""
    url = make_url(url_text)
    return int(_psql_value(
        url, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"))


def restore_postgres(dump: Path, url_text: str) -> None:
    """``pg_restore`` into the configured database (checked empty by the caller)."""
    url = make_url(url_text)
    _run(["pg_restore", "--no-owner", "--exit-on-error", "-d", url.database or "",
          str(dump)], _pg_env(url), "pg_restore")
