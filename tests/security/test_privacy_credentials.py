"""Issue 9 item 10: first-start credentials never go to a log collector.

``mssante serve`` prints the administrator's and the demo mailbox's application passwords
and the demo PKCS#12 password only when its standard output is a terminal (a person is
reading). Otherwise (systemd, Docker, a pipe into a log collector) they are written to a
0600 file in the data directory and only the file's path is printed and logged.
"""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import smtplib
import ssl
import subprocess
import time
from pathlib import Path

from tests.gateway.test_serve import MSSANTE, clean_env

CREDENTIALS_FILE = "first-start-credentials.txt"
PASSWORD_LINE = re.compile(r"demo mailbox\s+(\S+)\s+application password (\S+)")


def _env(data: Path) -> dict[str, str]:
    return clean_env(data, MSSANTE_DIRECTORY_ENABLED="false")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_credentials_go_to_a_0600_file_when_stdout_is_not_a_terminal(tmp_path: Path) -> None:
    data = tmp_path / "var"
    err_file = tmp_path / "stderr.log"
    with err_file.open("wb") as err:
        proc = subprocess.Popen([MSSANTE, "serve"], env=_env(data), stdout=subprocess.PIPE,
                                stderr=err)
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = proc.stdout.readline().decode()
            if not line:
                break
            lines.append(line)
            if line.startswith("Press Ctrl-C"):
                break
        out = "".join(lines)
        assert "Press Ctrl-C" in out, (out, err_file.read_text(errors="replace"))
        path = data / CREDENTIALS_FILE
        assert path.exists()
        assert path.stat().st_mode & 0o777 == 0o600
        text = path.read_text()
        found = PASSWORD_LINE.search(text)
        assert found, text
        address, password = found.groups()
        assert re.search(r"administrator\s+postmaster@mssante\.test\s+application password \S+",
                         text)
        assert "PKCS#12 password" in text
        secrets = [password, *re.findall(r"application password (\S+)", text),
                   *re.findall(r"PKCS#12 password (\S+?)[;)]", text)]
        assert len(secrets) >= 4, text
        # Neither standard output nor the log holds a password, both name the file.
        assert str(path) in out
        for secret in secrets:
            assert secret not in out
        _stop(proc)
        log = err_file.read_text(errors="replace")
        assert str(path) in log
        for secret in secrets:
            assert secret not in log
        # The password in the file is the real one.
        proc = subprocess.Popen([MSSANTE, "serve"], env=_env(data), stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL)
        assert proc.stdout is not None
        listening = ""
        while not listening.startswith("Press Ctrl-C"):
            listening = proc.stdout.readline().decode()
            assert listening, "gateway stopped before its banner"
            if "submission" in listening and "STARTTLS" in listening:
                port = int(re.findall(r":(\d+)\s", listening)[0])
        ctx = ssl.create_default_context(cafile=str(data / "pki" / "ca.pem"))
        ctx.check_hostname = False
        with smtplib.SMTP("127.0.0.1", port, timeout=20) as smtp:
            smtp.starttls(context=ctx)
            smtp.login(address, password)
    finally:
        _stop(proc)


def test_credentials_are_printed_on_a_terminal_and_no_file_is_written(tmp_path: Path) -> None:
    data = tmp_path / "var"
    master, slave = pty.openpty()
    proc = subprocess.Popen([MSSANTE, "serve"], env=_env(data), stdout=slave,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    os.close(slave)
    out = b""
    try:
        deadline = time.monotonic() + 90
        while b"Press Ctrl-C" not in out and time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
        text = out.decode(errors="replace")
        assert "Press Ctrl-C" in text, text
        assert PASSWORD_LINE.search(text), text
        assert "PKCS#12 password" in text
        assert not (data / CREDENTIALS_FILE).exists()
    finally:
        _stop(proc)
        os.close(master)
