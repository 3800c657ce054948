"""SIGHUP and ``mssante reload``: the running gateway re-reads its trust space and
``[transport]`` without a restart, and says what changed (issue 14, bug 3).

A real ``mssante serve``: before the reload a submission to a domain only just added to the
whitelist file is refused and nothing connects to its new transport; after it the
recipient is accepted and the outbound worker connects to the transport's address.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import smtplib
import socket
import ssl
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.gateway import ServeProcess
from trustspace.whitelist import build_whitelist_xml

pytestmark = pytest.mark.timeout(180)

NEW = "nouveau-centre.mssante.fr"


def mssante(proc: ServeProcess, *args: str) -> subprocess.CompletedProcess[str]:
    exe = str(Path(sys.executable).with_name("mssante"))
    return subprocess.run([exe, *args], env=proc._env(), capture_output=True, text=True,
                          timeout=60)


def rcpt_code(proc: ServeProcess, recipient: str) -> int:
    ctx = ssl.create_default_context(cafile=str(proc.ca_file))
    with smtplib.SMTP("127.0.0.1", proc.submission_port, timeout=30) as smtp:
        smtp.starttls(context=ctx)
        smtp.login(proc.demo_address, proc.demo_password)
        smtp.mail(proc.demo_address)
        code, _ = smtp.rcpt(recipient)
        if code == 250:
            smtp.data(f"From: <{proc.demo_address}>\r\nTo: <{recipient}>\r\n"
                      "Subject: after reload\r\n\r\nhello\r\n")
        return code


@pytest.fixture(params=["1", "2"], ids=["one-process", "two-workers"])
def proc(tmp_path: Path, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    # The file watch is slowed down so that only the reload can explain a change; with two
    # workers, the RCPT after the reload is served by a worker that must have reloaded too.
    p = ServeProcess(tmp_path / "serve",
                     env={"MSSANTE_TRUSTSPACE_FILE_CHECK_INTERVAL": "3600",
                          "MSSANTE_GATEWAY_WORKERS": request.param})
    try:
        p.start(timeout=120)
        yield p
    finally:
        p.kill()


def test_pid_file_is_private_and_removed_at_stop(proc: ServeProcess) -> None:
    pid_file = proc.data_dir / "mssante.pid"
    assert proc.process is not None
    assert pid_file.read_text().strip() == str(proc.process.pid)
    assert stat.S_IMODE(pid_file.stat().st_mode) == 0o600
    assert proc.stop() == 0
    assert not pid_file.exists()
    result = mssante(proc, "reload")
    assert result.returncode == 1
    assert f"no running gateway: {pid_file} does not exist" in result.stderr


async def test_reload_applies_trust_space_and_transport(proc: ServeProcess) -> None:
    assert await asyncio.to_thread(rcpt_code, proc, f"dr.x@{NEW}") == 550
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(30)
    port = listener.getsockname()[1]
    try:
        (proc.data_dir / "trustspace.xml").write_bytes(
            build_whitelist_xml(["mssante.test", NEW]))
        config = proc.data_dir / "mssante.toml"
        text = config.read_text()
        assert "\n[transport]\n" in text
        config.write_text(text.replace("\n[transport]\n",
                                       f'\n[transport]\n"{NEW}" = "127.0.0.1:{port}"\n'))
        result = await asyncio.to_thread(mssante, proc, "reload")
        assert result.returncode == 0, result.stderr
        assert proc.process is not None
        assert f"gateway (pid {proc.process.pid}) reloaded" in result.stdout
        assert f"trust space: 1 domain added ({NEW})" in result.stdout
        assert f"transport: {NEW} added (127.0.0.1:{port})" in result.stdout

        assert await asyncio.to_thread(rcpt_code, proc, f"dr.x@{NEW}") == 250
        conn, _ = await asyncio.to_thread(listener.accept)  # the new transport is used
        conn.close()
    finally:
        listener.close()

    again = await asyncio.to_thread(mssante, proc, "reload")
    assert again.returncode == 0 and "nothing changed" in again.stdout


async def test_reload_with_a_broken_configuration_keeps_everything(proc: ServeProcess) -> None:
    config = proc.data_dir / "mssante.toml"
    config.write_text(config.read_text() + "\n[gateway\n")
    result = await asyncio.to_thread(mssante, proc, "reload")
    assert result.returncode == 2  # refused before signalling, naming the file
    assert str(config) in result.stderr and "invalid TOML" in result.stderr
    # A SIGHUP from elsewhere (systemctl reload) with that file: refused, everything kept.
    assert proc.process is not None
    os.kill(proc.process.pid, signal.SIGHUP)
    status = proc.data_dir / "mssante.reload.json"
    for _ in range(200):
        if status.exists():
            break
        await asyncio.sleep(0.05)
    doc = json.loads(status.read_text())
    assert doc["count"] == 1 and doc["changes"] == []
    assert "the running configuration is kept" in doc["errors"][0]
    assert stat.S_IMODE(status.stat().st_mode) == 0o600
    assert proc.process.poll() is None
    assert await asyncio.to_thread(rcpt_code, proc, proc.demo_address) == 250
