"""What a backup directory holds, how it is written, checked and put back.

Layout of a backup (directory 0700, every file 0600)::

    manifest.json                  version, time, schema revision, counts, every file's
                                   SHA-256 and size (written last: no manifest, no backup)
    mssante.db | database.pgdump   the database snapshot (storage/backup.py)
    files/<path in the data dir>   configuration, PKI, trust-space files (and the key file
                                   only with --with-key)
    external/<n>-<name>            configured files that live outside the data dir
    directory-*.ldif               the managed slapd's databases (directory_ldap/dump.py)

The master key file is left out by default: a backup copied to other media must not carry
the key that decrypts every stored body, so the key is backed up separately (and a restore
needs it copied back before the gateway starts).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from config import Settings
from directory_ldap import dump as ldif_dump
from directory_ldap.service import slapd_layout
from storage import backup as db_backup
from trustspace.refresh import last_good_path

FORMAT = "mssante-backup/1"
MANIFEST = "manifest.json"


class BackupRefused(Exception):
    """The backup or the target cannot be used; the message names the file or directory."""


@dataclass
class BackupReport:
    """What ``mssante backup`` tells the operator."""

    dest: Path
    manifest: dict[str, Any]
    seconds: float
    size: int
    warnings: list[str] = field(default_factory=list)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def _copy_private(src: Path, dst: Path) -> None:
    _private_dir(dst.parent)
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out, src.open("rb") as inp:
        shutil.copyfileobj(inp, out, 1 << 20)
    os.chmod(dst, 0o600)


def _inside(path: Path, root: Path) -> Path | None:
    try:
        return path.resolve().relative_to(root.resolve())
    except ValueError:
        return None


def _configured_files(settings: Settings, with_key: bool) -> list[tuple[str, Path]]:
    """(role, path) of every file a restored gateway needs besides the database."""
    found: list[tuple[str, Path]] = []
    if settings.config_file.is_file():
        found.append(("config", settings.config_file))
    if settings.pki_dir.is_dir():
        found += [("pki", p) for p in sorted(settings.pki_dir.rglob("*")) if p.is_file()]
    tls = [settings.tls_cert_file, settings.tls_key_file, *settings.tls_anchor_files,
           *settings.tls_crl_files]
    if settings.trustspace.ca_file:
        tls.append(settings.path(settings.trustspace.ca_file, settings.trustspace.ca_file))
    found += [("tls", p) for p in tls if p.is_file()]
    for path in (settings.trustspace_file, last_good_path(settings)):
        if path.is_file():
            found.append(("trustspace", path))
    if with_key and settings.key_file.is_file():
        found.append(("master-key", settings.key_file))
    unique: dict[Path, tuple[str, Path]] = {}
    for role, path in found:
        unique.setdefault(path.resolve(), (role, path))
    return list(unique.values())


def checkpoints_up_to(directory: Path, ledger_size: int) -> list[Path]:
    """The checkpoint files of ``directory`` signing a tree of at most ``ledger_size``
    records (their names start with the tree size, see storage/checkpoint_files.py)."""
    if not directory.is_dir():
        return []
    out = []
    for path in sorted(directory.glob("*.note")):
        size = path.name.split("-", 1)[0]
        if size.isascii() and size.isdigit() and int(size) <= ledger_size:
            out.append(path)
    return out


def create_backup(settings: Settings, dest: Path, *, with_key: bool) -> BackupReport:
    """Writes a complete backup of the running (or stopped) gateway into ``dest``.

    ``dest`` must not exist or be an empty directory. Blocking: it copies files and runs
    slapcat / pg_dump.
    """
    started = time.monotonic()
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise BackupRefused(f"the backup directory {dest} is not empty; choose a new one")
    _private_dir(dest)
    entries: list[dict[str, Any]] = []
    warnings: list[str] = []

    url = settings.database_url
    if db_backup.is_sqlite(url):
        snap = db_backup.snapshot_sqlite(
            db_backup.sqlite_path(url), dest / db_backup.SQLITE_FILE,
            settings.database.busy_timeout_ms)
    else:
        snap = db_backup.snapshot_postgres(url, dest / db_backup.PG_DUMP_FILE)
    entries.append({"path": snap.file.name, "role": "database"})

    for n, (role, path) in enumerate(_configured_files(settings, with_key)):
        rel = _inside(path, settings.data_dir)
        if rel is not None:
            stored = Path("files") / rel
            entries.append({"path": str(stored), "role": role, "original": str(rel)})
        else:
            stored = Path("external") / f"{n}-{path.name}"
            entries.append({"path": str(stored), "role": role, "original": str(path)})
        _copy_private(path, dest / stored)

    # Checkpoint files, copied after the database snapshot: the ones that sign a ledger no
    # longer than the snapshot's are exactly those of the state backed up (a checkpoint
    # signed meanwhile belongs to a later state, and restored next to the older database it
    # would read as records cut off). On PostgreSQL the count is read just after pg_dump, so
    # a checkpoint signed in that instant could still be taken: verify would then name it.
    ledger = snap.counts.get("proofs", 0)
    for path in checkpoints_up_to(settings.checkpoint_dir, ledger):
        rel = _inside(path, settings.data_dir)
        stored = Path("files") / rel if rel is not None else Path("external") / path.name
        entries.append({"path": str(stored), "role": "checkpoints",
                        "original": str(rel if rel is not None else path)})
        _copy_private(path, dest / stored)

    if settings.directory.enabled and not settings.directory.url:
        layout = slapd_layout(settings)
        for out in ldif_dump.dump(layout, settings.directory.slapd_path, dest):
            entries.append({"path": out.name, "role": "directory"})
    elif settings.directory.url:
        warnings.append(f"the external directory {settings.directory.url} is not part of "
                        "this backup; back it up on its own server")

    if not with_key:
        warnings.append(
            f"the master key file {settings.key_file} is NOT in this backup: back it up "
            "separately and keep it apart; without it no stored message can be read")

    size = 0
    for entry in entries:
        path = dest / entry["path"]
        entry["sha256"] = sha256_file(path)
        entry["size"] = path.stat().st_size
        size += entry["size"]
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "version": metadata.version("mssante-gateway"),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "database": snap.engine,
        "schema_revision": snap.schema_revision,
        "counts": snap.counts,
        "with_key": with_key,
        "data_dir": str(settings.data_dir),
        "files": entries,
    }
    tmp = dest / f".{MANIFEST}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(manifest, fh, indent=2, ensure_ascii=False)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(dest / MANIFEST)
    return BackupReport(dest, manifest, time.monotonic() - started, size, warnings)


# -- checking and restoring --------------------------------------------------------------------


def read_manifest(src: Path) -> dict[str, Any]:
    """The manifest of backup ``src``; BackupRefused when absent or unreadable."""
    path = src / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BackupRefused(f"{path} does not exist: {src} is not a complete backup") from None
    except (OSError, ValueError) as exc:
        raise BackupRefused(f"the manifest {path} cannot be read: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupRefused(f"{path} is not an mssante backup manifest ({FORMAT})")
    return manifest


def verify_backup(src: Path, manifest: dict[str, Any]) -> None:
    """Every file is there with its recorded size and SHA-256, and none escapes ``src``."""
    for entry in manifest["files"]:
        rel = Path(entry["path"])
        if rel.is_absolute() or ".." in rel.parts:
            raise BackupRefused(f"the manifest names a path outside the backup: {rel}")
        path = src / rel
        if not path.is_file():
            raise BackupRefused(f"the backup file {path} is missing")
        if path.stat().st_size != entry["size"] or sha256_file(path) != entry["sha256"]:
            raise BackupRefused(
                f"the backup file {path} is corrupted (its SHA-256 differs from the manifest)")


def check_empty_target(data_dir: Path) -> None:
    if data_dir.exists() and (not data_dir.is_dir() or any(data_dir.iterdir())):
        raise BackupRefused(
            f"the data directory {data_dir} is not empty; restore only into an empty one")


@dataclass
class RestoreReport:
    manifest: dict[str, Any]
    files: int
    ldif_loaded: int
    warnings: list[str] = field(default_factory=list)


def restore_files(src: Path, manifest: dict[str, Any], data_dir: Path,
                  config_file: Path) -> RestoreReport:
    """Copies the configuration and files back (the database and LDIF come after, once
    the restored configuration says where they go)."""
    _private_dir(data_dir)
    report = RestoreReport(manifest, 0, 0)
    for entry in manifest["files"]:
        role = entry["role"]
        if role in ("database", "directory"):
            continue
        original = Path(entry["original"])
        if role == "config":
            target = config_file
            if target.exists():
                report.warnings.append(
                    f"the configuration {target} exists and was kept; the backup's copy is "
                    f"{src / entry['path']}")
                continue
        elif original.is_absolute():
            target = original
            if target.exists():
                if sha256_file(target) != entry["sha256"]:
                    report.warnings.append(
                        f"{target} exists with other content and was left as it is; the "
                        f"backup's copy is {src / entry['path']}")
                continue
        else:
            target = data_dir / original
        _copy_private(src / entry["path"], target)
        report.files += 1
    return report


def check_database_target(manifest: dict[str, Any], settings: Settings) -> None:
    """The configured database matches the backup's engine and is empty (nothing written
    yet, so a refusal leaves the target as it was)."""
    url = settings.database_url
    if manifest["database"] == "sqlite":
        if not db_backup.is_sqlite(url):
            raise BackupRefused("the backup holds a SQLite database but [database] url names "
                                "PostgreSQL; restore with a SQLite configuration")
        path = db_backup.sqlite_path(url)
        if path.exists():
            raise BackupRefused(f"the database file {path} already exists; restore only into "
                                "a new database")
        return
    if db_backup.is_sqlite(url):
        raise BackupRefused("the backup holds a PostgreSQL dump but [database] url names "
                            "SQLite; set [database] url to an empty PostgreSQL database")
    tables = db_backup.postgres_table_count(url)
    if tables:
        raise BackupRefused(
            f"the database {db_backup.database_name(url)} already holds {tables} tables; "
            "restore only into an empty database")


def restore_database(src: Path, manifest: dict[str, Any], settings: Settings) -> None:
    url = settings.database_url
    if manifest["database"] == "sqlite":
        db_backup.restore_sqlite(src / db_backup.SQLITE_FILE, db_backup.sqlite_path(url))
    else:
        db_backup.restore_postgres(src / db_backup.PG_DUMP_FILE, url)


def backup_config(src: Path, manifest: dict[str, Any]) -> Path | None:
    """The configuration file inside backup ``src``, if it has one."""
    for entry in manifest["files"]:
        if entry["role"] == "config":
            return src / entry["path"]
    return None


def restore_directory(src: Path, settings: Settings) -> int:
    if not settings.directory.enabled or settings.directory.url:
        return 0
    return ldif_dump.load(slapd_layout(settings), settings.directory.slapd_path, src)
