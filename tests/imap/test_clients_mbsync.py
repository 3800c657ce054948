"""Debian's mbsync (isync): full sync of a 2,000-message mailbox to a Maildir, changes both
ways, and a second sync that transfers only the changes."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.imap import ALICE, ImapEnv, message

COUNT = 2000


def _config(env: ImapEnv, root: Path) -> Path:
    maildir = root / "mail"
    maildir.mkdir()
    conf = root / "mbsyncrc"
    # isync 1.4 spells it SSLType; 1.5 accepts TLSType too.
    conf.write_text(
        f"IMAPAccount acc\nHost localhost\nPort {env.tls_port}\nUser {ALICE}\n"
        f"Pass {env.alice_password}\nSSLType IMAPS\nCertificateFile {env.ca_file}\n"
        f"PipelineDepth 50\n\n"
        f"IMAPStore remote\nAccount acc\n\n"
        f"MaildirStore local\nPath {maildir}/\nInbox {maildir}/INBOX\n\n"
        f"Channel ch\nFar :remote:\nNear :local:\nPatterns INBOX\nCreate Near\n"
        f"Expunge Both\nSyncState *\nSync All\n"
    )
    conf.chmod(0o600)
    return conf


async def _mbsync(conf: Path) -> str:
    exe = shutil.which("mbsync")
    if exe is None:
        pytest.fail("mbsync is required (Debian package isync)")
    proc = await asyncio.create_subprocess_exec(
        exe, "-V", "-c", str(conf), "ch", stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env={**os.environ, "HOME": str(conf.parent)})
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    text = out.decode("utf-8", "replace")
    assert proc.returncode == 0, text[-3000:]
    return text


def _files(root: Path) -> list[Path]:
    inbox = root / "mail" / "INBOX"
    return sorted(p for sub in ("cur", "new") for p in (inbox / sub).iterdir())


@pytest.mark.timeout(180)
async def test_mbsync_full_then_incremental(imap_env: ImapEnv, tmp_path: Path) -> None:
    # 100 at a time, as SMTP sessions would: 2,000 deliveries waiting at once for a pooled
    # connection can outwait the pool's timeout on a loaded machine
    slots = asyncio.Semaphore(100)

    async def deliver(n: int) -> None:
        async with slots:
            await imap_env.deliver(message(n))

    await asyncio.gather(*(deliver(n) for n in range(COUNT)))
    conf = _config(imap_env, tmp_path)
    await _mbsync(conf)
    files = _files(tmp_path)
    assert len(files) == COUNT

    # Near side: mark one message seen (Maildir flag S), delete another (T + expunge).
    seen, trashed = files[0], files[1]
    seen.rename(seen.parent.parent / "cur" / (seen.name.split(":2,")[0] + ":2,S"))
    trashed.unlink()
    # Far side: a new message arrives.
    await imap_env.deliver(message(COUNT + 1))
    await _mbsync(conf)
    files = _files(tmp_path)
    assert len(files) == COUNT  # -1 deleted +1 new

    from imapclient import IMAPClient

    def check() -> tuple[int, list[int]]:
        c = IMAPClient("127.0.0.1", port=imap_env.tls_port, ssl=True,
                       ssl_context=imap_env.client_ssl(), timeout=10)
        c.login(ALICE, imap_env.alice_password)
        info = c.select_folder("INBOX")
        seen_uids = c.search(["SEEN"])
        c.logout()
        return info[b"EXISTS"], seen_uids

    exists, seen_list = await asyncio.to_thread(check)
    assert exists == COUNT
    assert len(seen_list) == 1
