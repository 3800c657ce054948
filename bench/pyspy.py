"""py-spy sampling of the gateway during a benchmark, and a summary of where time went.

The issue's rule is "profile before you change": a benchmark run with ``--py-spy FILE``
samples the gateway (supervisor and worker processes) while the clients load it, writes
the collapsed stacks (the input of any flame graph tool: ``flamegraph.pl``, speedscope,
``py-spy``'s own SVG) to FILE, and prints the frames that used the most samples of their
own, so the main findings can be read off the run's output.
"""

from __future__ import annotations

import collections
import shutil
import signal
import subprocess
import sys
from pathlib import Path


class PySpy:
    """``py-spy record`` attached to a running process tree until :meth:`stop`."""

    def __init__(self, out: Path, pid: int, rate: int = 200) -> None:
        exe = Path(sys.executable).with_name("py-spy")
        program = str(exe) if exe.exists() else shutil.which("py-spy")
        if program is None:
            raise SystemExit("py-spy is not installed (make setup-bench installs it)")
        self.out = out
        self.process = subprocess.Popen(
            [program, "record", "--pid", str(pid), "--subprocesses", "--rate", str(rate),
             "--format", "raw", "--output", str(out), "--nonblocking"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def stop(self) -> None:
        """End the sampling and wait for py-spy to write its file."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def top(self, count: int) -> list[str]:
        """The ``count`` frames with the most samples of their own, and the total."""
        return summarise(self.out, count)


def summarise(path: Path, count: int) -> list[str]:
    """Own-time and inclusive shares of the hottest frames in a collapsed-stacks file."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    if not path.exists():
        return [f"py-spy wrote no samples to {path}"]
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        samples = int(n)
        total += samples
        frames = stack.split(";")
        own[_short(frames[-1])] += samples
        for frame in {_short(f) for f in frames}:
            inclusive[frame] += samples
    if total == 0:
        return [f"py-spy wrote no samples to {path}"]
    lines = [f"py-spy: {total} samples in {path}; own time, then inclusive:"]
    for frame, n in own.most_common(count):
        lines.append(f"  own {100 * n / total:5.1f}%  incl {100 * inclusive[frame] / total:5.1f}%"
                     f"  {frame}")
    return lines


def _short(frame: str) -> str:
    """``function (path/to/module.py:123)`` with the path cut to the project or library."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    for marker in ("site-packages/", "lib/python3"):
        if marker in where:
            where = where.split(marker, 1)[1]
            break
    else:
        where = where.replace(str(Path.cwd()) + "/", "")
    return f"{name} ({where.rsplit(':', 1)[0]})"
