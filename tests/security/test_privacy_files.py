"""Issue 9 item 7: the data directory and every file in it are private to the gateway's user.

The database holds password hashes and message metadata, the key file the master key, the
PKI private keys: under the usual umask 022 ``mssante init`` used to leave the data
directory 0755 and ``mssante.db`` 0644. Whatever the umask, directories must be 0700 and
files 0600, existing ones are put right at start, and ``mssante check-config`` names any
path that is not.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import time
from pathlib import Path

from tests.gateway.test_serve import MSSANTE, clean_env


def _with_umask(mask: int) -> None:
    os.umask(mask)


def _run(data: Path, *args: str, umask: int = 0o022) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MSSANTE, *args], env=clean_env(data), capture_output=True, text=True, timeout=120,
        preexec_fn=lambda: _with_umask(umask),  # noqa: PLW1509 - the umask under test
    )


def _too_open(root: Path) -> list[str]:
    """Every path under ``root`` (itself included) readable or writable beyond its owner."""
    found: list[str] = []
    paths = [root, *root.rglob("*")]
    for path in paths:
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            continue
        if st.st_mode & 0o077:
            found.append(f"{path} {stat.S_IMODE(st.st_mode):04o}")
    return found


def test_init_under_umask_022_leaves_nothing_readable_by_others(tmp_path: Path) -> None:
    data = tmp_path / "var"
    result = _run(data, "init")
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "mssante.db").stat().st_mode) == 0o600
    assert _too_open(data) == []


def test_serve_puts_existing_files_right_and_creates_private_ones(tmp_path: Path) -> None:
    data = tmp_path / "var"
    assert _run(data, "init").returncode == 0
    # An installation made by an older version: everything group/world readable.
    # (The key file was always created 0600; an exposed one is refused, see test_keys.)
    for path in [data, *data.rglob("*")]:
        if path.name != "master.key":
            path.chmod(0o755 if path.is_dir() else 0o644)
    env = clean_env(data)
    proc = subprocess.Popen([MSSANTE, "serve"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, preexec_fn=lambda: _with_umask(0o022))
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = proc.stdout.readline().decode()
            assert line, "gateway stopped before its banner"
            if line.startswith("Press Ctrl-C"):
                break
        # Database, WAL and SHM, key, PKI, config, credentials, slapd's data: all private.
        assert (data / "mssante.db-wal").exists()
        assert (data / "directory").is_dir()
        assert _too_open(data) == []
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    assert _too_open(data) == []


def test_check_config_warns_naming_path_and_mode(tmp_path: Path) -> None:
    data = tmp_path / "var"
    assert _run(data, "init").returncode == 0
    ok = _run(data, "check-config")
    assert ok.returncode == 0 and "warning" not in ok.stderr + ok.stdout
    (data / "mssante.db").chmod(0o644)
    data.chmod(0o755)
    result = _run(data, "check-config")
    assert result.returncode == 0, result.stderr
    lines = [ln for ln in result.stderr.splitlines() if "warning" in ln]
    assert any(f"{data / 'mssante.db'}" in ln and "0644" in ln for ln in lines), result.stderr
    assert any(f"{data} " in ln and "0755" in ln for ln in lines), result.stderr
    assert len(lines) == 2, lines
    # check-config only reports: it changes nothing.
    assert stat.S_IMODE((data / "mssante.db").stat().st_mode) == 0o644


async def test_database_files_are_created_private_without_the_command_line(
    tmp_path: Path,
) -> None:
    """Code that opens the store itself (an embedding program, a tool) does not go through
    the command line's umask: the data directory, the SQLite file and its WAL are still
    created 0700/0600."""
    from config import load_settings
    from storage.database import open_database

    settings = load_settings(data_dir=tmp_path / "var", env={})
    previous = os.umask(0o022)
    try:
        db = await open_database(settings, may_create_key=True)
        try:
            async with db.begin() as conn:
                await conn.exec_driver_sql("SELECT 1")
            modes = {p.name: stat.S_IMODE(p.stat().st_mode)
                     for p in (settings.data_dir, *settings.data_dir.iterdir())}
        finally:
            await db.close()
    finally:
        os.umask(previous)
    assert modes["var"] == 0o700
    assert modes["mssante.db"] == 0o600
    assert modes.get("mssante.db-wal", 0o600) == 0o600
    assert all(mode & 0o077 == 0 for mode in modes.values()), modes
