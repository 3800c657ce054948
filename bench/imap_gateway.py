"""The gateway side of the IMAP benchmark: ``mssante serve`` as a child, optionally profiled.

:class:`BenchServe` is the test suite's :class:`ServeProcess` with two additions the
benchmark needs: the child can run under ``python -m cProfile`` (to find server-side
hotspots under the same load), and its resident memory can be read from ``/proc``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tests.fixtures.gateway import ServeProcess


class BenchServe(ServeProcess):
    """``mssante serve`` on the bench's data directory; ``profile_to`` enables cProfile."""

    profile_to: Path | None = None

    def command(self) -> list[str]:
        if self.profile_to is None:
            return super().command()
        exe = Path(sys.executable).with_name("mssante")
        return [sys.executable, "-m", "cProfile", "-o", str(self.profile_to), str(exe), "serve"]

    def start(self, timeout: float = 60.0) -> None:
        """As the suite's, with longer to start: the benchmark's database is large."""
        super().start(timeout)

    def rss_bytes(self) -> int:
        """VmRSS of the gateway process (the one serving IMAP), from /proc/PID/status."""
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("VmRSS missing from /proc status")
