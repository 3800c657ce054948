"""``mssante serve`` stops at once on SIGTERM after clients dropped their connections.

The reported case: one ``bash -c 'exec 3<>/dev/tcp/127.0.0.1/2587; exec 3>&-'`` (what a load
balancer's TCP health check does) made the next SIGTERM wait the whole shutdown grace
(30 s), because the dropped session was never released. Here every listener gets a
connect-then-close, a half-open connection and an aborted TLS handshake from outside the
gateway's process, then SIGTERM must end it in well under the grace.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests.fixtures.gateway import ServeProcess
from tests.security.conn_probes import client_hello

GRACE = 30.0
LISTENERS = (
    ("MSSANTE_SMTP_RELAY_PORT", "smtp-starttls"),
    ("MSSANTE_SMTP_SUBMISSION_PORT", "smtp-starttls"),
    ("MSSANTE_SMTP_SUBMISSIONS_PORT", "implicit"),
    ("MSSANTE_IMAP_PORT", "imap-starttls"),
    ("MSSANTE_IMAP_TLS_PORT", "implicit"),
)


def _drop_all_ways(port: int, kind: str) -> None:
    # connect-then-close, with bash as in the report when it is there
    if shutil.which("bash"):
        subprocess.run(
            ["bash", "-c", f"exec 3<>/dev/tcp/127.0.0.1/{port}; exec 3>&-"], check=True,
            timeout=10,
        )
    with socket.create_connection(("127.0.0.1", port), timeout=10):
        pass
    # half-open: FIN sent, socket left open until the server closes it (or 2 s)
    half = socket.create_connection(("127.0.0.1", port), timeout=10)
    half.shutdown(socket.SHUT_WR)
    # TLS aborted half-way through the ClientHello
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        if kind != "implicit":
            file = sock.makefile("rb")
            file.readline()
            if kind == "smtp-starttls":
                sock.sendall(b"EHLO probe.example\r\n")
                while file.readline()[3:4] == b"-":
                    pass
                sock.sendall(b"STARTTLS\r\n")
            else:
                sock.sendall(b"s STARTTLS\r\n")
            file.readline()
        hello = client_hello()
        sock.sendall(hello[: len(hello) // 2])
    half.settimeout(2)
    try:
        while half.recv(4096):
            pass
    except OSError:
        pass
    half.close()


def test_sigterm_after_dropped_connections_does_not_wait_the_grace(tmp_path: Path) -> None:
    proc = ServeProcess(
        tmp_path / "serve",
        env={"MSSANTE_GATEWAY_SHUTDOWN_GRACE": str(GRACE), "MSSANTE_DIRECTORY_ENABLED": "false"},
    )
    try:
        proc.start(timeout=120)
        for variable, kind in LISTENERS:
            _drop_all_ways(proc.ports[variable], kind)
        time.sleep(0.5)
        started = time.monotonic()
        code = proc.stop(timeout=GRACE + 30)
        elapsed = time.monotonic() - started
    finally:
        proc.kill()
    assert code == 0
    assert elapsed < GRACE / 3, f"SIGTERM took {elapsed:.1f}s (grace {GRACE}s)"
