"""The reference server of the IMAP benchmark: a private Dovecot (Debian's dovecot-imapd).

Private means: its own configuration file (``dovecot -c FILE``), its base and state
directories and its log under one temporary directory, a passwd-file with the same user and
password as the gateway's demo mailbox, a static userdb whose Maildir lives under that
directory, and one implicit-TLS listener on a loopback port using the gateway's development
certificate with TLS 1.2 as the floor. The system-wide Dovecot is never started or touched.
Defaults are kept everywhere else, so the comparison is with Dovecot as people run it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

MAIL_UID = 65534  # nobody: Dovecot refuses to serve mail as root
MAIL_GID = 65534

POLICY_RC = Path("/usr/sbin/policy-rc.d")


def ensure_installed() -> str | None:
    """Installs dovecot-imapd when missing (root only); a reason when it cannot be used."""
    if shutil.which("dovecot") and Path("/usr/lib/dovecot/imap").exists():
        return None
    if os.geteuid() != 0:
        return "dovecot-imapd is not installed and this is not root"
    created_policy = False
    if not POLICY_RC.exists():
        # Exit code 101 tells invoke-rc.d not to start the system service during install.
        POLICY_RC.write_text("#!/bin/sh\nexit 101\n")
        POLICY_RC.chmod(0o755)
        created_policy = True
    try:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        done = subprocess.run(
            ["apt-get", "install", "-y", "--no-install-recommends", "dovecot-imapd"],
            env=env, capture_output=True, text=True)
    finally:
        if created_policy:
            POLICY_RC.unlink(missing_ok=True)
    if done.returncode != 0:
        return f"apt-get install dovecot-imapd failed: {done.stderr.strip()[-300:]}"
    return None


class PrivateDovecot:
    """One Dovecot instance confined to ``root``, serving one user on one TLS port."""

    def __init__(self, root: Path, port: int, user: str, password: str,
                 cert: Path, key: Path) -> None:
        if ":" in password or "\n" in password or ":" in user:
            raise ValueError("passwd-file fields cannot contain ':' or newlines")
        self.root = root
        self.port = port
        self.user = user
        self.password = password
        self.cert, self.key = cert, key
        self.config = root / "dovecot.conf"
        self.home = root / "home" / user

    @property
    def maildir(self) -> Path:
        return self.home / "Maildir"

    def folder_dir(self, name: str) -> Path:
        """Maildir++ layout: INBOX is the root, other folders are ``.Name``."""
        return self.maildir if name == "INBOX" else self.maildir / f".{name}"

    def prepare(self) -> None:
        """Writes the configuration and creates the (empty) Maildir folders."""
        for sub in ("run", "state"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        for path in (self.root, self.root / "home"):
            path.mkdir(parents=True, exist_ok=True)
            path.chmod(0o755)
        (self.root / "passwd").write_text(f"{self.user}:{{PLAIN}}{self.password}::::::\n")
        (self.root / "passwd").chmod(0o644)
        conf = f"""\
instance_name = bench-imap-{self.port}
base_dir = {self.root / "run"}
state_dir = {self.root / "state"}
log_path = {self.root / "dovecot.log"}
info_log_path = {self.root / "dovecot.log"}
protocols = imap
listen = 127.0.0.1
ssl = required
ssl_cert = <{self.cert}
ssl_key = <{self.key}
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = yes
auth_mechanisms = plain
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.root / "passwd"}
}}
userdb {{
  driver = static
  args = uid={MAIL_UID} gid={MAIL_GID} home={self.root / "home"}/%u
}}
mail_location = maildir:~/Maildir
# Every bench client logs in as the same user from 127.0.0.1 (default limit: 10).
protocol imap {{
  mail_max_userip_connections = 100000
}}
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {self.port}
    ssl = yes
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""
        self.config.write_text(conf)

    def start(self) -> None:
        # The daemon keeps the descriptors it inherits: a file, never a pipe we would wait on.
        out_file = self.root / "start.out"
        with out_file.open("wb") as out:
            done = subprocess.run(["dovecot", "-c", str(self.config)], stdout=out,
                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            text = out_file.read_text(errors="replace")[-400:]
            raise RuntimeError(f"dovecot did not start: {text}")

    def stop(self) -> None:
        subprocess.run(["dovecot", "-c", str(self.config), "stop"], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        pid_file = self.root / "run" / "master.pid"
        for _ in range(100):
            if not pid_file.exists():
                break
            time.sleep(0.05)

    def log_tail(self) -> str:
        try:
            return (self.root / "dovecot.log").read_text(errors="replace")[-1500:]
        except OSError:
            return ""
