"""A crash mid-import leaves the old national data or the new one, never a mix.

The import runs as a real ``mssante directory import`` process, killed with SIGKILL (with
the slapadd it started) at several points; what the directory then holds is read through a
freshly started managed slapd, as after a reboot.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from directory_ldap.layout import NATIONAL_BRANCH, branch_dn
from directory_ldap.queries import search_paged
from directory_ldap.sample_extract import write_sample
from directory_ldap.service import Directory
from gateway.cli import main
from tests.fixtures.slapd import make_test_pki

MSSANTE = Path(sys.executable).with_name("mssante")


def _data_dir(tmp_path: Path) -> Path:
    pki = make_test_pki(tmp_path / "pki")
    (tmp_path / "mssante.toml").write_text(
        "[directory]\nport = 0\nldaps_port = 0\nsync_writes = false\n"
        f'[tls]\ncert_file = "{pki["cert"]}"\nkey_file = "{pki["key"]}"\n'
        f'anchors = ["{pki["ca"]}"]\n', encoding="utf-8")
    return tmp_path


def _contents(data: Path) -> frozenset[tuple[str, str]]:
    """(address, row digest) of every national entry, read through a fresh managed slapd."""
    from config import load_settings

    async def read() -> frozenset[tuple[str, str]]:
        directory = Directory(load_settings(data_dir=data, env={}), workers=1)
        await directory.start()
        try:
            branch = branch_dn(directory.base_dn, NATIONAL_BRANCH)
            found = await directory.pool.run(lambda c: search_paged(
                c, branch, "(objectClass=mssanteMailbox)", ["mail", "mssanteRowHash"]))
        finally:
            await directory.stop()
        return frozenset((a["mail"][0].decode(), a["mssanteRowHash"][0].decode())
                         for _dn, a in found)

    return asyncio.run(read())


def _expected(path: Path) -> frozenset[tuple[str, str]]:
    from directory_ldap.extract import read_extract

    return frozenset((r.entry.address, r.row_hash) for r in read_extract(path).rows.values())


def _kill_orphaned_slapd(data: Path) -> None:
    """The killed command's slapd runs in its own session; stop it as a reboot would."""
    pid_file = data / "directory" / "slapd.pid"
    if pid_file.exists():
        pid = int(pid_file.read_text().split()[0])
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        for _ in range(200):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.01)


def _start_import(data: Path, extract: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(MSSANTE), "--data-dir", str(data), "directory", "import", str(extract)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )


def _kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the command and the slapadd it runs
    except ProcessLookupError:
        pass
    proc.wait(10)


@pytest.fixture
def extracts(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A data dir holding the old extract, and a new extract (changes, adds and deletes)."""
    data = _data_dir(tmp_path / "data")
    old, new = tmp_path / "old.txt", tmp_path / "new.txt"
    write_sample(old, 3000)
    write_sample(new, 20000, start=500, variant_of=set(range(500, 1500)))
    result = CliRunner().invoke(main, ["--data-dir", str(data), "directory", "import", str(old)])
    assert result.exit_code == 0, result.output
    return data, old, new


def test_kill_during_build_keeps_old_data_and_rerun_switches(
    extracts: tuple[Path, Path, Path],
) -> None:
    data, old, new = extracts
    generations = data / "directory" / "national.d"
    proc = _start_import(data, new)
    deadline = time.monotonic() + 30
    while not any((p / "data.mdb").exists() for p in generations.glob("building-*")):
        assert proc.poll() is None, "the import ended before slapadd started"
        assert time.monotonic() < deadline
        time.sleep(0.005)
    _kill(proc)
    _kill_orphaned_slapd(data)
    assert list(generations.glob("building-*")), "the kill should interrupt the build"
    assert _contents(data) == _expected(old)

    rerun = CliRunner().invoke(main, ["--data-dir", str(data), "directory", "import", str(new)])
    assert rerun.exit_code == 0, rerun.output
    assert "(after an interrupted import)" in rerun.output
    assert "500 deleted" in rerun.output and "1000 updated" in rerun.output
    assert "deleted (500): " in rerun.output and " and 450 more" in rerun.output
    assert not list(generations.glob("building-*"))
    assert _contents(data) == _expected(new)


def test_kill_right_after_the_switch_gives_new_data(extracts: tuple[Path, Path, Path]) -> None:
    """Killed between the commit point (the symlink rename) and slapd's restart."""
    data, _old, new = extracts
    link = data / "directory" / "national"
    before = os.readlink(link)
    proc = _start_import(data, new)
    deadline = time.monotonic() + 60
    while os.readlink(link) == before:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.002)
    _kill(proc)
    _kill_orphaned_slapd(data)
    assert _contents(data) == _expected(new)


@pytest.mark.parametrize("delay", [0.4, 1.2, 2.0, 2.8])
def test_kill_at_any_point_leaves_old_or_new(
    extracts: tuple[Path, Path, Path], delay: float
) -> None:
    data, old, new = extracts
    proc = _start_import(data, new)
    time.sleep(delay)
    finished = proc.poll() is not None
    _kill(proc)
    _kill_orphaned_slapd(data)
    now = _contents(data)
    assert now in (_expected(old), _expected(new)), "a mix of old and new data"
    if finished:
        assert now == _expected(new)
