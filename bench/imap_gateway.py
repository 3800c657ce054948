"""The gateway side of the IMAP benchmark: ``mssante serve`` as a child, optionally profiled.

:class:`BenchServe` is the test suite's :class:`ServeProcess` with two additions the
benchmark needs: the child can run under ``python -m cProfile`` (to find server-side
hotspots under the same load), and its resident memory can be read from ``/proc``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from tests.fixtures.gateway import ServeProcess


class BenchServe(ServeProcess):
    """``mssante serve`` on the bench's data directory; ``profile_to`` enables cProfile."""

    profile_to: Path | None = None

    def start(self, timeout: float = 60.0) -> None:
        if self.profile_to is None:
            super().start(timeout)
            return
        self.starts += 1
        log_file = self.data_dir / f"serve-{self.starts}.out"
        exe = Path(sys.executable).with_name("mssante")
        command = [sys.executable, "-m", "cProfile", "-o", str(self.profile_to),
                   str(exe), "serve"]
        with log_file.open("wb") as out:
            self.process = subprocess.Popen(command, env=self._env(), stdout=out,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = log_file.read_text(errors="replace")
            if "Press Ctrl-C to stop." in text:
                self._parse_banner(text)
                return
            if self.process.poll() is not None:
                raise RuntimeError(f"mssante serve exited {self.process.returncode}:\n{text}")
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"mssante serve did not start in {timeout}s")

    def rss_bytes(self) -> int:
        """VmRSS of the gateway process (the one serving IMAP), from /proc/PID/status."""
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("VmRSS missing from /proc status")
