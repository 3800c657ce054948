"""Where the first-start credentials go: a person's terminal, or a private file.

Why: ``mssante serve`` usually runs under systemd, Docker or a pipe into a log collector,
where standard output is kept, shipped and read by many. The administrator's and the demo
mailbox's application passwords and the demo PKCS#12 password are therefore printed only
when standard output is a terminal; otherwise they are written to a file only the
gateway's user can read (0600) in the data directory, and only its path is printed and
logged.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.runtime import FirstStartCredentials

log = logging.getLogger("mssante.gateway")

CREDENTIALS_FILE = "first-start-credentials.txt"
"""Name of the credentials file, in the data directory."""


def credential_lines(creds: FirstStartCredentials) -> list[str]:
    """The credentials as a person reads them (the same lines on a terminal or in the file)."""
    lines = [
        f"  administrator   {creds.admin_address}  application password {creds.admin_password}",
        f"  demo mailbox    {creds.demo_address}  application password {creds.demo_password}",
    ]
    if creds.demo_certificate is not None:
        lines.append(
            f"  demo certificate {creds.demo_certificate}  (PKCS#12 password "
            f"{creds.demo_certificate_password}; for SASL EXTERNAL)"
        )
    return lines


def write_private(path: Path, text: str) -> None:
    """Writes ``text`` to ``path`` readable by its owner only, whatever the umask, even when
    the file already existed with a wider mode."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fd = -1
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
    finally:
        if fd >= 0:
            os.close(fd)


def announce(creds: FirstStartCredentials, data_dir: Path, *, terminal: bool) -> list[str]:
    """The banner lines about the credentials: the credentials themselves on a terminal,
    otherwise the path of the 0600 file they were written to (also logged)."""
    if terminal:
        return ["First start: these passwords are shown once, keep them.",
                *credential_lines(creds)]
    path = data_dir / CREDENTIALS_FILE
    write_private(path, "\n".join([
        "mssante-gateway first start: keep these passwords, then delete this file.",
        *credential_lines(creds),
    ]) + "\n")
    log.info("first_start_credentials_written", extra={"fields": {"path": str(path)}})
    return [f"First start: the passwords were written to {path} (mode 0600, not shown here "
            "because standard output is not a terminal); keep them, then delete the file."]
