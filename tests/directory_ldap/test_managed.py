"""The managed slapd's life cycle: start on free ports, restart after a crash, stop."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from directory_ldap import DirectoryEntry, DirectoryUnavailable
from directory_ldap import managed as managed_mod
from directory_ldap.service import Directory
from tests.fixtures.slapd import directory_settings


async def test_killed_slapd_is_restarted_and_searches_work_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(managed_mod, "BACKOFF_FIRST", 0.1)
    caplog.set_level("INFO", logger="mssante.directory")
    directory = Directory(directory_settings(tmp_path), workers=2)
    await directory.start()
    try:
        assert directory.managed is not None
        assert directory.layout is not None and directory.layout.port > 0
        await directory.publish(DirectoryEntry(address="survivor@mssante.test", surname="Survie"))
        pid = directory.managed.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        for _ in range(200):
            if directory.managed.restarts >= 1 and directory.managed.pid not in (None, pid):
                break
            await asyncio.sleep(0.05)
        assert directory.managed.restarts == 1
        hits = await directory.search("survie")
        assert [e.address for e in hits] == ["survivor@mssante.test"]
        assert "event=slapd_exited code=-9" in caplog.text
        assert caplog.text.count("event=slapd_started") == 2
    finally:
        await directory.stop()
    assert directory.managed.pid is None
    assert "event=slapd_stopped" in caplog.text


async def test_missing_slapd_binary_is_reported(tmp_path: Path) -> None:
    settings = directory_settings(tmp_path, slapd_path=str(tmp_path / "no-slapd"))
    directory = Directory(settings)
    with pytest.raises(DirectoryUnavailable, match="no-slapd not found"):
        await directory.start()
    directory.pool.close()


async def test_bad_certificate_makes_start_fail_with_log_excerpt(tmp_path: Path) -> None:
    settings = directory_settings(tmp_path)
    settings.tls_key_file.write_text("not a key\n")
    directory = Directory(settings)
    with pytest.raises(DirectoryUnavailable, match="slapd did not start"):
        await directory.start()
    directory.pool.close()


async def test_unreachable_external_server_is_reported(tmp_path: Path) -> None:
    settings = directory_settings(
        tmp_path, url=f"ldaps://127.0.0.1:{managed_mod.free_port()}",
        bind_dn="cn=gateway,dc=mssante,dc=test", bind_password="x",
    )
    directory = Directory(settings, workers=1)
    assert directory.managed is None
    with pytest.raises(DirectoryUnavailable, match="does not answer"):
        await directory.lookup("a@b.test")
    directory.pool.close()
