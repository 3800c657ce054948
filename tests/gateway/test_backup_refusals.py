"""Refusals of ``mssante backup`` and ``mssante restore``: each exits 2 naming what is wrong,
and ``--with-key`` warns loudly that the key travels with the backup."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(120)


def mssante(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    exe = str(Path(sys.executable).with_name("mssante"))
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("MSSANTE_")}
    env["MSSANTE_HOME"] = str(home)
    return subprocess.run([exe, *args], env=env, capture_output=True, text=True, timeout=100)


@pytest.fixture(scope="module")
def backup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(data dir after ``mssante init``, its backup without the key)."""
    root = tmp_path_factory.mktemp("backup")
    home = root / "home"
    assert mssante(home, "init").returncode == 0
    result = mssante(home, "backup", str(root / "b"))
    assert result.returncode == 0, result.stderr
    return home, root / "b"


def test_backup_without_key_says_to_keep_the_key_apart(backup: tuple[Path, Path]) -> None:
    home, dest = backup
    manifest = json.loads((dest / "manifest.json").read_text())
    assert manifest["with_key"] is False
    assert "master-key" not in {f["role"] for f in manifest["files"]}


def test_backup_with_key_warns_and_includes_it(backup: tuple[Path, Path],
                                               tmp_path: Path) -> None:
    home, _ = backup
    result = mssante(home, "backup", "--with-key", str(tmp_path / "k"))
    assert result.returncode == 0, result.stderr
    assert "WARNING" in result.stderr and "master key" in result.stderr
    assert (tmp_path / "k" / "files" / "master.key").read_bytes() == \
        (home / "master.key").read_bytes()
    target = tmp_path / "r"
    restored = mssante(target, "restore", str(tmp_path / "k"))
    assert restored.returncode == 0, restored.stderr
    assert (target / "master.key").exists()
    assert "no master key" not in restored.stderr


def test_backup_into_non_empty_directory_is_refused(backup: tuple[Path, Path],
                                                   tmp_path: Path) -> None:
    home, _ = backup
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("x")
    result = mssante(home, "backup", str(tmp_path / "busy"))
    assert result.returncode == 2
    assert f"{tmp_path / 'busy'} is not empty" in result.stderr


def test_restore_into_non_empty_data_dir_is_refused(backup: tuple[Path, Path],
                                                   tmp_path: Path) -> None:
    _, dest = backup
    target = tmp_path / "target"
    target.mkdir()
    (target / "mssante.toml").write_text("")
    result = mssante(target, "restore", str(dest))
    assert result.returncode == 2
    assert f"the data directory {target} is not empty" in result.stderr
    assert not (target / "mssante.db").exists()


def test_restore_of_a_corrupted_backup_is_refused_naming_the_file(
    backup: tuple[Path, Path], tmp_path: Path
) -> None:
    _, dest = backup
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-a", str(dest), str(copy)], check=True)
    victim = copy / "files" / "pki" / "server.pem"
    data = bytearray(victim.read_bytes())
    data[100] ^= 1
    victim.write_bytes(bytes(data))
    target = tmp_path / "target"
    result = mssante(target, "restore", str(copy))
    assert result.returncode == 2
    assert f"the backup file {victim} is corrupted" in result.stderr
    assert not target.exists() or not any(target.iterdir())


def test_restore_of_an_incomplete_backup_is_refused(backup: tuple[Path, Path],
                                                   tmp_path: Path) -> None:
    _, dest = backup
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-a", str(dest), str(copy)], check=True)
    (copy / "mssante.db").unlink()
    result = mssante(tmp_path / "t1", "restore", str(copy))
    assert result.returncode == 2
    assert f"the backup file {copy / 'mssante.db'} is missing" in result.stderr
    (copy / "manifest.json").unlink()
    result = mssante(tmp_path / "t2", "restore", str(copy))
    assert result.returncode == 2
    assert "manifest.json does not exist" in result.stderr
