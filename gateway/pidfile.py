"""The running gateway's pid file, so that ``mssante reload`` can find it.

``<data dir>/mssante.pid``, mode 0600, written once the gateway serves and removed when it
stops. A file left by a crash is recognised because its process is gone or is not an
``mssante`` process (pids are reused): a signal is never sent to a stranger.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

PID_FILE = "mssante.pid"


class NoRunningGateway(Exception):
    """No gateway serves this data directory; the message says how that was decided."""


def pid_file_path(data_dir: Path) -> Path:
    return data_dir / PID_FILE


def write_pid_file(data_dir: Path) -> Path:
    path = pid_file_path(data_dir)
    tmp = path.with_name(f".{PID_FILE}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(f"{os.getpid()}\n")
    os.chmod(tmp, 0o600)
    tmp.replace(path)
    return path


def remove_pid_file(path: Path) -> None:
    """Removes the pid file if it is still ours (another gateway may have replaced it)."""
    with contextlib.suppress(OSError, ValueError):
        if int(path.read_text(encoding="ascii").split()[0]) == os.getpid():
            path.unlink()


def running_gateway_pid(data_dir: Path) -> int:
    """The pid of the gateway serving ``data_dir``; NoRunningGateway explains otherwise."""
    path = pid_file_path(data_dir)
    try:
        pid = int(path.read_text(encoding="ascii").split()[0])
    except FileNotFoundError:
        raise NoRunningGateway(
            f"no running gateway: {path} does not exist (start it with mssante serve)"
        ) from None
    except (OSError, ValueError, IndexError):
        raise NoRunningGateway(f"no running gateway: {path} holds no process id") from None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        cmdline = b""
    if b"mssante" not in cmdline:
        raise NoRunningGateway(
            f"no running gateway: {path} names process {pid}, which is not a running "
            "mssante gateway (a file left by a crash; it can be deleted)"
        )
    return pid
