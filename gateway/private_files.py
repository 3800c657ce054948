"""The data directory is private to the gateway's user: directories 0700, files 0600.

Why: the data directory holds the database (password hashes, mailbox names, encrypted
messages), the master key, the PKI's private keys, the directory server's data and, after a
first start without a terminal, the first passwords. Under the usual umask 022 a new
directory is 0755 and a new file 0644, readable by every local account. So the command line
sets a umask of 077 for the whole process (children such as slapd inherit it), start-up
tightens what already exists (an installation made before, or files copied in), and
``mssante check-config`` names every path that is not private.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy.engine import make_url

from config import Settings
from storage.sqlite_inline import lock_path

log = logging.getLogger("mssante.gateway")

PRIVATE_UMASK = 0o077
DIR_MODE = 0o700
FILE_MODE = 0o600


def restrict_umask() -> None:
    """New files and directories of this process (and its children) are owner-only."""
    os.umask(PRIVATE_UMASK)


def _sqlite_file(settings: Settings) -> Path | None:
    url = make_url(settings.database_url)
    if not url.drivername.startswith("sqlite") or not url.database:
        return None
    return Path(url.database)


def _candidates(settings: Settings) -> Iterator[Path]:
    """The data directory and everything in it, then the gateway's own files kept elsewhere
    (configuration, key file, SQLite database and its WAL/SHM)."""
    root = settings.data_dir
    seen: set[Path] = set()
    if root.exists():
        seen.add(root)
        yield root
        for top, dirs, files in os.walk(root, followlinks=False):
            for name in (*dirs, *files):
                path = Path(top) / name
                seen.add(path)
                yield path
    extra: list[Path] = [settings.config_file, settings.key_file]
    db_file = _sqlite_file(settings)
    if db_file is not None:
        extra += [db_file, Path(f"{db_file}-wal"), Path(f"{db_file}-shm"),
                  Path(lock_path(str(db_file)))]
    for path in extra:
        if path not in seen and path.exists():
            seen.add(path)
            yield path


def exposed_paths(settings: Settings, *, sockets: bool = False) -> list[tuple[Path, int]]:
    """``(path, mode)`` of every gateway path that group or others may use (symbolic links
    are not followed: their own mode means nothing; sockets are reached through their
    directory)."""
    found: list[tuple[Path, int]] = []
    for path in _candidates(settings):
        try:
            st = path.lstat()
        except FileNotFoundError:
            continue  # removed meanwhile (a WAL checkpointed away)
        if stat.S_ISLNK(st.st_mode) or (stat.S_ISSOCK(st.st_mode) and not sockets):
            # a socket's mode is its creator's (slapd's ldapi, anew at every start): not
            # worth a warning, the 0700 directory holding it keeps other accounts out
            continue
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            found.append((path, stat.S_IMODE(st.st_mode)))
    return found


def make_private(settings: Settings) -> list[tuple[Path, int]]:
    """Sets directories to 0700 and files to 0600 where group or others had any right;
    returns what was changed, with the mode it had. The key file is left alone: the key
    ring refuses an exposed master key (it may have been read) with the command to run."""
    changed: list[tuple[Path, int]] = []
    for path, mode in exposed_paths(settings, sockets=True):
        if path == settings.key_file:
            continue
        try:
            path.chmod(DIR_MODE if path.is_dir() else FILE_MODE)
        except OSError as exc:
            log.warning("data_mode_not_changed", extra={"fields": {
                "path": str(path), "mode": f"{mode:04o}", "error": exc.strerror or str(exc)}})
            continue
        try:
            quiet = stat.S_ISSOCK(path.lstat().st_mode)
        except OSError:
            quiet = False
        if not quiet:
            changed.append((path, mode))
    if changed:
        log.warning("data_modes_tightened", extra={"fields": {
            "count": len(changed), "first": str(changed[0][0]),
            "was": f"{changed[0][1]:04o}"}})
    return changed


def warning_line(path: Path, mode: int) -> str:
    """One line for a person: the path, its mode, what it should be and the command."""
    want = DIR_MODE if path.is_dir() else FILE_MODE
    return (f"{path} is mode {mode:04o}, readable or writable by other accounts; it should "
            f"be {want:04o} (run: chmod {want:o} {path})")
