"""``mssante serve`` as a user runs it: a subprocess on a fresh data dir, then SIGTERM."""

from __future__ import annotations

import imaplib
import os
import re
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

MSSANTE = str(Path(sys.executable).with_name("mssante"))
LISTENER = re.compile(r"^  (?P<label>.+?)\s+(?P<host>[\d.]+):(?P<port>\d+)  \((?P<sec>[^)]+)\)$")
PORT_VARS = (
    "MSSANTE_SMTP_RELAY_PORT", "MSSANTE_SMTP_SUBMISSION_PORT", "MSSANTE_SMTP_SUBMISSIONS_PORT",
    "MSSANTE_IMAP_PORT", "MSSANTE_IMAP_TLS_PORT", "MSSANTE_DIRECTORY_PORT",
    "MSSANTE_DIRECTORY_LDAPS_PORT", "MSSANTE_WEB_PORT", "MSSANTE_WEB_CPS_PORT",
)


def clean_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MSSANTE_")}
    env["MSSANTE_HOME"] = str(data_dir)
    for var in PORT_VARS:
        env[var] = "0"  # every service on a free port chosen by the system
    env.update(extra)
    return env


def start(data_dir: Path, **extra: str) -> tuple[subprocess.Popen[str], list[str]]:
    proc = subprocess.Popen(
        [MSSANTE, "serve"], env=clean_env(data_dir, **extra), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )
    lines: list[str] = []
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if line.startswith("Press Ctrl-C"):
            return proc, lines
    proc.kill()
    _, err = proc.communicate(timeout=10)
    raise AssertionError(f"no banner; stdout={lines!r} stderr={err[-2000:]!r}")


def handshake(label: str, host: str, port: int, security: str, ca_file: Path) -> str:
    """Completes a TLS handshake on one listener the way its clients do; returns the version."""
    ctx = ssl.create_default_context(cafile=str(ca_file))
    ctx.check_hostname = False  # connecting by IP; the chain is still verified
    if security.startswith("implicit TLS") or security == "LDAPS":
        with socket.create_connection((host, port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                return str(tls.version())
    if label.startswith("SMTP"):
        with smtplib.SMTP(host, port, timeout=10) as smtp:
            smtp.ehlo("test.example")
            smtp.starttls(context=ctx)
            assert isinstance(smtp.sock, ssl.SSLSocket)
            return str(smtp.sock.version())
    if label.startswith("IMAP"):
        imap = imaplib.IMAP4(host, port, timeout=10)
        try:
            imap.starttls(ssl_context=ctx)
            assert isinstance(imap.sock, ssl.SSLSocket)
            return str(imap.sock.version())
        finally:
            imap.logout()
    if label.startswith("LDAP"):
        import ldap

        conn = ldap.initialize(f"ldap://{host}:{port}")
        conn.set_option(ldap.OPT_X_TLS_CACERTFILE, str(ca_file))
        conn.set_option(ldap.OPT_X_TLS_REQUIRE_CERT, ldap.OPT_X_TLS_DEMAND)
        conn.set_option(ldap.OPT_X_TLS_NEWCTX, 0)
        conn.start_tls_s()
        version = "TLS (StartTLS)"
        conn.unbind_s()
        return version
    raise AssertionError(f"no handshake recipe for {label} ({security})")


def test_serve_banner_tls_on_every_port_and_clean_sigterm(tmp_path: Path) -> None:
    data = tmp_path / "var"
    proc, lines = start(data)
    try:
        text = "\n".join(lines)
        assert "mssante-gateway ready" in text
        # Standard output is a pipe here: the passwords are in a 0600 file, not the banner
        # (tests/security/test_privacy_credentials.py covers the terminal case).
        credentials = data / "first-start-credentials.txt"
        assert f"First start: the passwords were written to {credentials}" in text
        assert credentials.stat().st_mode & 0o777 == 0o600
        secrets = credentials.read_text()
        assert re.search(
            r"administrator\s+postmaster@mssante\.test\s+application password \S+", secrets
        )
        assert re.search(r"demo mailbox\s+demo@mssante\.test\s+application password \S+",
                         secrets)
        assert "application password" not in text
        assert "mssante accounts portal-password postmaster@mssante.test" in text
        assert str(data / "outbox") in text
        listeners = [m.groupdict() for m in map(LISTENER.match, lines) if m]
        assert len(listeners) >= 5, lines
        for lst in listeners:
            version = handshake(
                lst["label"], lst["host"], int(lst["port"]), lst["sec"], data / "pki" / "ca.pem"
            )
            assert version.startswith("TLS"), (lst, version)
        assert re.search(r"demo certificate \S+demo-cps\.p12", secrets)
        assert (data / "pki" / "issued" / "demo-cps.p12").exists()
        assert (data / "mssante.toml").exists()
        assert (data / "master.key").stat().st_mode & 0o777 == 0o600
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    # Second start on the same data dir: no new credentials are printed.
    proc, lines = start(data)
    try:
        assert not any("First start" in line for line in lines)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def run_cli(data_dir: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MSSANTE, *args], env=clean_env(data_dir, **extra), capture_output=True, text=True,
        timeout=60,
    )


def test_port_in_use_exits_non_zero_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli(tmp_path, "serve", MSSANTE_SMTP_SUBMISSION_PORT=str(port))
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("mssante: error:") and "already in use" in last


def test_unreadable_certificate_exits_non_zero(tmp_path: Path) -> None:
    bad = tmp_path / "broken.pem"
    bad.write_text("not a certificate\n")
    result = run_cli(tmp_path, "serve", MSSANTE_TLS_CERT_FILE=str(bad))
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("mssante: error:") and str(bad) in last


def test_bad_config_exits_2_naming_file_key_value(tmp_path: Path) -> None:
    (tmp_path / "mssante.toml").write_text("[imap]\nport = 99999\n")
    result = run_cli(tmp_path, "serve")
    assert result.returncode == 2
    assert str(tmp_path / "mssante.toml") in result.stderr
    assert "imap.port = 99999" in result.stderr and "1 to 65535" in result.stderr
    (tmp_path / "mssante.toml").write_text("[imap\n")
    result = run_cli(tmp_path, "check-config")
    assert result.returncode == 2 and "invalid TOML" in result.stderr


def test_unreachable_postgresql_exits_1_quickly_with_masked_password(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    url = f"postgresql+asyncpg://gw:s3cret-pw@127.0.0.1:{port}/mssante"
    started = time.monotonic()
    result = run_cli(tmp_path, "serve", MSSANTE_DATABASE_URL=url)
    elapsed = time.monotonic() - started
    assert result.returncode == 1
    assert elapsed < 10 + 5  # the process itself must give up within 10 s of trying
    assert "s3cret-pw" not in result.stderr + result.stdout
    assert "***" in result.stderr and str(port) in result.stderr


def test_key_file_missing_while_bodies_exist_refuses_to_start(tmp_path: Path) -> None:
    assert run_cli(tmp_path, "init").returncode == 0
    import asyncio

    from config import load_settings
    from storage.database import open_database

    async def store_a_body() -> None:
        db = await open_database(load_settings(data_dir=tmp_path, env={}), may_create_key=False)
        async with db.begin() as conn:
            await db.blobs.put(conn, b"Subject: x\r\n\r\nbody\r\n")
        await db.close()

    asyncio.run(store_a_body())
    (tmp_path / "master.key").rename(tmp_path / "master.key.away")
    result = run_cli(tmp_path, "serve")
    assert result.returncode == 1
    assert "key file" in result.stderr and "missing" in result.stderr
    assert not (tmp_path / "master.key").exists()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("accounts", "add", "a@gmail.com", "--name", "A", "--idnat", "810001234567"),
         "'gmail.com' is not served here"),
        (("accounts", "add", "a@mssante.test", "--name", "A", "--idnat", "12"), "'12'"),
        (("accounts", "add", "demo@mssante.test", "--name", "A", "--idnat", "810001234567"),
         "already has a mailbox"),
    ],
)
def test_accounts_add_refusals_exit_2_and_write_nothing(
    tmp_path: Path, args: tuple[str, ...], fragment: str
) -> None:
    first = run_cli(tmp_path, "accounts", "add", "demo@mssante.test", "--name", "Dr Demo",
                    "--idnat", "810001234567")
    assert first.returncode == 0 and "application password (shown once):" in first.stdout
    before = run_cli(tmp_path, "accounts", "list").stdout
    result = run_cli(tmp_path, *args)
    assert result.returncode == 2, result.stderr
    assert fragment in result.stderr
    assert run_cli(tmp_path, "accounts", "list").stdout == before


def test_sigkill_leaves_no_slapd_behind_and_restart_works(tmp_path: Path) -> None:
    data = tmp_path / "var"
    proc, _ = start(data)
    pid_file = data / "directory" / "slapd.pid"
    slapd_pid = int(pid_file.read_text().split()[0])
    proc.kill()
    proc.wait(timeout=30)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and Path(f"/proc/{slapd_pid}").exists():
        state = Path(f"/proc/{slapd_pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state == "Z":
            break
        time.sleep(0.1)
    else:
        assert not Path(f"/proc/{slapd_pid}").exists(), "slapd outlived the gateway"
    proc, lines = start(data)
    try:
        assert any("LDAP directory" in line for line in lines)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
