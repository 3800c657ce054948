"""Fills both servers with the same messages before any measurement.

The gateway is seeded offline, through its own accept path (:class:`mail.pipeline.Pipeline`,
the only writer of mailboxes, in batches as under load) on its data directory while
``mssante serve`` is stopped — so what IMAP serves afterwards is exactly what SMTP delivery
would have stored (precomputed views, encrypted bodies, proofs). Dovecot's Maildir is written
directly as files, one per message, the way its delivery agent leaves them.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from pathlib import Path

from config import Settings
from gateway.startup import open_storage
from mail.changes import ChangeHub
from mail.pipeline import Delivery, LocalTarget, Pipeline
from mail.views import build_view
from storage import accounts as account_rows
from storage import folders as folder_rows

WORDS = ("patient", "compte", "rendu", "examen", "biologie", "radiologie", "consultation",
         "ordonnance", "suivi", "courrier", "sortie", "hospitalisation", "résultat",
         "bilan", "cardiologie", "urgence", "avis", "dossier", "traitement", "contrôle")
SUBJECT_TOPICS = ("Compte rendu", "Résultats biologie", "Lettre de sortie", "Avis",
                  "Ordonnance", "Convocation")
BASE_DATE = 1_735_700_000  # early January 2025


def make_message(n: int, *, small: bool, user: str) -> bytes:
    """Message ``n``: deterministic, realistic headers; 1–8 KB body (``small``: ~100 B)."""
    rnd = random.Random(n)
    topic = SUBJECT_TOPICS[n % len(SUBJECT_TOPICS)]
    sender = f"dr.{rnd.choice(WORDS)}{n % 97}@ch-exemple.mssante.fr"
    when = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(BASE_DATE + n * 60))
    if small:
        body = f"Document {n}.\r\n"
    else:
        lines = []
        for _ in range(rnd.randint(12, 100)):
            lines.append(" ".join(rnd.choice(WORDS) for _ in range(10)))
        body = "\r\n".join(lines) + "\r\n"
    return (
        f"From: Dr Emetteur <{sender}>\r\nTo: <{user}>\r\n"
        f"Subject: {topic} n°{n}\r\nDate: {when}\r\n"
        f"Message-ID: <bench.{n}@ch-exemple.mssante.fr>\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n"
        f"\r\n{body}"
    ).encode()


def small_message(n: int, user: str) -> bytes:
    return make_message(n, small=True, user=user)


async def seed_gateway(settings: Settings, user: str, folders: dict[str, list[bytes]],
                       *, batch: int = 1024) -> float:
    """Stores ``folders`` (name → messages) in ``user``'s mailbox; seconds taken.

    Views are built here in the bench process and handed in with the delivery (what
    ``Pipeline.submit`` would otherwise do in a thread), and deliveries are submitted many at
    a time so the pipeline's group commit writes them in large transactions.
    """
    started = time.monotonic()
    db = await open_storage(settings)
    pipeline = Pipeline(db, settings, ChangeHub())
    await pipeline.start()
    try:
        async with db.begin() as conn:
            account = await account_rows.get_by_address(conn, user)
            if account is None:
                raise RuntimeError(f"no account {user} in the gateway's database")
            targets: dict[str, LocalTarget] = {}
            for name in folders:
                folder = await folder_rows.get(conn, account.id, name)
                if folder is None:
                    folder = await folder_rows.create(conn, account.id, name)
                targets[name] = LocalTarget(user, account.id, folder.id)
        for name, raws in folders.items():
            target = targets[name]
            for start in range(0, len(raws), batch):
                chunk = raws[start:start + batch]
                deliveries = [
                    Delivery(raw=raw, sender="bench@ch-exemple.mssante.fr", local=[target],
                             view=build_view(raw))
                    for raw in chunk
                ]
                await asyncio.gather(*(pipeline.submit(d) for d in deliveries))
    finally:
        await pipeline.stop()
        await db.close()
    return time.monotonic() - started


def seed_maildir(folder: Path, raws: list[bytes], *, uid: int, gid: int,
                 is_inbox: bool) -> float:
    """Writes ``raws`` into the Maildir ``folder`` (cur/, seen-less); seconds taken."""
    started = time.monotonic()
    for sub in ("cur", "new", "tmp"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    if not is_inbox:
        (folder / "maildirfolder").touch()  # Maildir++: marks a sub-folder
    cur = folder / "cur"
    pid = os.getpid()
    for n, raw in enumerate(raws, 1):
        when = BASE_DATE + n * 60
        # Maildir file name: unique base, S=<size> (saves Dovecot a stat), empty flag set.
        path = cur / f"{when}.M{n}P{pid}.bench,S={len(raw)}:2,"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, raw)
            os.fchown(fd, uid, gid)
        finally:
            os.close(fd)
        os.utime(path, (when, when))  # internal date
    for path in (folder, *(folder / s for s in ("cur", "new", "tmp"))):
        os.chown(path, uid, gid)
    if not is_inbox:
        os.chown(folder / "maildirfolder", uid, gid)
    return time.monotonic() - started
