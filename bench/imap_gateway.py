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
        """VmRSS of the gateway: the process and its worker processes, from /proc."""
        assert self.process is not None
        return sum(_rss(pid) for pid in [self.process.pid, *_workers_of(self.process.pid)])


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("VmRSS missing from /proc status")


def _workers_of(pid: int) -> list[int]:
    """The children of ``pid`` that are gateway workers ([gateway] workers > 1)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid and b"gateway.worker" in cmdline:
            out.append(int(entry.name))
    return out
