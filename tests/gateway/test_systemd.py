"""systemd integration: the unit file verifies, and ``mssante serve`` speaks sd_notify.

The notification test plays systemd's part with a real datagram socket: READY=1 must come
only once every listener accepts connections, WATCHDOG=1 at half the period, STOPPING=1 at
SIGTERM.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fixtures.gateway import ServeProcess

UNIT = Path(__file__).resolve().parents[2] / "contrib" / "systemd" / "mssante-gateway.service"


def test_unit_file_verifies_and_is_hardened(tmp_path: Path) -> None:
    text = UNIT.read_text(encoding="utf-8")
    for line in ("Type=notify", "WatchdogSec=", "ProtectSystem=strict", "PrivateTmp=yes",
                 "NoNewPrivileges=yes", "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
                 "ReadWritePaths=/var/lib/mssante", "User=mssante", "UMask=0077"):
        assert line in text, line
    # systemd-analyze checks that ExecStart exists: point it at this checkout's command
    exe = str(Path(sys.executable).with_name("mssante"))
    unit = tmp_path / "mssante-gateway.service"
    unit.write_text(text.replace("/opt/mssante-gateway/.venv/bin/mssante", exe))
    result = subprocess.run(["systemd-analyze", "verify", str(unit)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "mssante-gateway.service" not in result.stderr, result.stderr


def _receive(sock: socket.socket, until: str, within: float) -> list[str]:
    """Datagrams received until one contains ``until`` (each as text)."""
    deadline = time.monotonic() + within
    got: list[str] = []
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            got.append(sock.recv(4096).decode())
        except TimeoutError:
            break
        if until in got[-1]:
            return got
    raise AssertionError(f"no {until} within {within}s; got {got}")


@pytest.mark.parametrize("workers", ["1", "2"], ids=["one-process", "two-workers"])
def test_serve_notifies_ready_watchdog_and_stopping(tmp_path: Path, workers: str) -> None:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        proc = ServeProcess(tmp_path / "serve",
                            env={"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "400000",
                                 "MSSANTE_GATEWAY_WORKERS": workers})
        try:
            proc.start(timeout=120)
            ready = _receive(sock, "READY=1", within=30)
            assert proc.process is not None
            assert f"MAINPID={proc.process.pid}" in ready[-1]
            for variable, port in proc.ports.items():
                if variable == "MSSANTE_WEB_PORT" or "DIRECTORY" in variable:
                    continue
                socket.create_connection(("127.0.0.1", port), timeout=5).close()
            assert any("WATCHDOG=1" in m for m in _receive(sock, "WATCHDOG=1", within=5))
            proc.process.send_signal(signal.SIGTERM)
            assert any("STOPPING=1" in m for m in _receive(sock, "STOPPING=1", within=30))
            assert proc.process.wait(timeout=30) == 0
        finally:
            proc.kill()
