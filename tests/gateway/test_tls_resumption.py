"""TLS session resumption on every TLS listener, checked with ``openssl s_client``.

A client that reconnects (Thunderbird's five connections, a mobile client coming back, a
hospital MTA's next burst) resumes its TLS session instead of a full handshake: Python's
server contexts issue TLS 1.3 session tickets (OpenSSL's default, two per handshake) and
keep a TLS 1.2 session cache. The first connection saves its session (``-sess_out``), the
second offers it (``-sess_in``) and must be ``Reused``, on the implicit-TLS and STARTTLS
listeners of SMTP and IMAP and on the HTTPS portal, with one process and with two
workers (which share their ticket keys, trustspace/tickets.py).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.gateway import ServeProcess

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed"),
]

LISTENERS = [
    ("MSSANTE_SMTP_SUBMISSIONS_PORT", []),
    ("MSSANTE_SMTP_SUBMISSION_PORT", ["-starttls", "smtp"]),
    ("MSSANTE_SMTP_RELAY_PORT", ["-starttls", "smtp"]),
    ("MSSANTE_IMAP_TLS_PORT", []),
    ("MSSANTE_IMAP_PORT", ["-starttls", "imap"]),
    ("MSSANTE_WEB_PORT", []),
]


@pytest.fixture(scope="module", params=["1", "2"], ids=["one-process", "two-workers"])
def gateway(tmp_path_factory: pytest.TempPathFactory,
            request: pytest.FixtureRequest) -> Iterator[ServeProcess]:
    # With two workers the second connection reaches the other worker about half the time:
    # it resumes all the same, the workers sharing their ticket keys.
    proc = ServeProcess(tmp_path_factory.mktemp("tls") / "serve",
                        env={"MSSANTE_DIRECTORY_ENABLED": "false",
                             "MSSANTE_GATEWAY_WORKERS": request.param})
    try:
        proc.start(timeout=120)
        yield proc
    finally:
        proc.kill()


def s_client(proc: ServeProcess, port: int, extra: list[str], session: Path,
             mode: str, version: str) -> str:
    """One connection; stays a second so that the TLS 1.3 tickets arrive, then QUIT."""
    command = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile",
               str(proc.ca_file), version, mode, str(session), *extra]
    with subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE) as client:
        time.sleep(1)
        stdout, stderr = client.communicate(b"QUIT\r\n", timeout=30)
    out = stdout.decode(errors="replace")
    for line in out.splitlines():
        if line.startswith(("New,", "Reused,")):
            return line
    raise AssertionError(f"no handshake line from s_client:\n{out[-2000:]}"
                         f"\n{stderr.decode(errors='replace')[-1000:]}")


@pytest.mark.parametrize("version", ["-tls1_3", "-tls1_2"])
@pytest.mark.parametrize(("variable", "extra"), LISTENERS,
                         ids=[v.removeprefix("MSSANTE_").lower() for v, _ in LISTENERS])
def test_a_second_connection_resumes_the_session(
    gateway: ServeProcess, tmp_path: Path, variable: str, extra: list[str], version: str,
) -> None:
    port = gateway.ports[variable]
    session = tmp_path / "session.pem"
    first = s_client(gateway, port, extra, session, "-sess_out", version)
    assert first.startswith("New,"), first
    second = s_client(gateway, port, extra, session, "-sess_in", version)
    assert second.startswith("Reused,"), f"{variable}: {second}"
