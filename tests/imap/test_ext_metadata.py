"""RFC 5464 METADATA on the real server, raw commands; answers from the RFC."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from accounts import delegations
from accounts.mailboxes import add_mailbox
from tests.fixtures.imap import ALICE, BOB, ImapEnv
from tests.imap.rfc_wire import Wire


def _send(w: Wire, data: bytes) -> tuple[str, list[bytes]]:
    tag = w.imap._new_tag()  # type: ignore[attr-defined]
    w.imap.send(tag + b" " + data + b"\r\n")
    lines: list[bytes] = []
    while True:
        resp = w.response()
        if resp.startswith(tag + b" "):
            w.last_tagged = resp
            return resp.split()[1].decode(), lines
        lines.append(resp.rstrip(b"\r\n"))


async def test_metadata_mailbox_and_server_entries(imap_env: ImapEnv) -> None:
    """RFC 5464 §4.2-4.3: SETMETADATA sets and (NIL) removes entries, GETMETADATA answers
    each entry asked (NIL without a value), names case-insensitive; DEPTH 0/1/infinity
    (§4.2.2); MAXSIZE leaves longer values out with ``OK [METADATA LONGENTRIES n]``
    (§4.2.1); literal8 values for octets a string cannot hold; server entries with
    mailbox ``""``, its /shared ones not writable; RENAME keeps the entries, DELETE drops
    them; entry names outside /private and /shared are BAD (§3.2.1)."""

    def run() -> None:
        w = Wire(imap_env)
        _, lines = w.cmd("CAPABILITY")
        assert b" METADATA" in lines[0]
        w.cmd("CREATE Dossiers")
        status, _ = w.cmd('SETMETADATA Dossiers (/shared/comment "Patients du mardi" '
                          '/private/comment "a relire" /Private/Vendor/Mss/A "1" '
                          '/private/vendor/mss/a/b "2" /private/vendor/mss/a/b/c "3")')
        assert status == "OK", w.last_tagged
        _, lines = w.cmd("GETMETADATA Dossiers (/shared/comment /PRIVATE/Comment "
                         "/private/nothing)")
        assert lines == [b'* METADATA Dossiers (/shared/comment "Patients du mardi" '
                         b'/private/comment "a relire" /private/nothing NIL)'], lines
        _, lines = w.cmd("GETMETADATA Dossiers /private/vendor/mss/a")
        assert lines == [b'* METADATA Dossiers (/private/vendor/mss/a "1")'], lines
        _, lines = w.cmd("GETMETADATA (DEPTH 1) Dossiers /private/vendor/mss/a")
        assert lines == [b'* METADATA Dossiers (/private/vendor/mss/a "1" '
                         b'/private/vendor/mss/a/b "2")'], lines
        _, lines = w.cmd("GETMETADATA (DEPTH infinity) Dossiers /private/vendor/mss/a")
        assert lines[0].endswith(b'/private/vendor/mss/a/b/c "3")'), lines
        status, lines = w.cmd("GETMETADATA (MAXSIZE 5) Dossiers (/shared/comment "
                              "/private/vendor/mss/a)")
        assert lines == [b'* METADATA Dossiers (/private/vendor/mss/a "1")'], lines
        assert w.last_tagged.split()[2:4] == [b"[METADATA", b"LONGENTRIES"], w.last_tagged
        assert b"LONGENTRIES 17]" in w.last_tagged
        status, _ = _send(w, b"SETMETADATA Dossiers (/private/bin ~{3+}\r\na\x00b)")
        assert status == "OK", w.last_tagged
        _, lines = _send(w, b"GETMETADATA Dossiers /private/bin")
        assert lines == [b"* METADATA Dossiers (/private/bin ~{3}\r\na\x00b)"], lines
        assert w.cmd("SETMETADATA Dossiers (/private/comment NIL)")[0] == "OK"
        _, lines = w.cmd("GETMETADATA Dossiers /private/comment")
        assert lines == [b"* METADATA Dossiers (/private/comment NIL)"], lines
        w.cmd("RENAME Dossiers Dossiers2026")
        _, lines = w.cmd("GETMETADATA Dossiers2026 /shared/comment")
        assert b'"Patients du mardi"' in lines[0]
        w.cmd("DELETE Dossiers2026")
        w.cmd("CREATE Dossiers2026")
        _, lines = w.cmd("GETMETADATA Dossiers2026 /shared/comment")
        assert lines == [b"* METADATA Dossiers2026 (/shared/comment NIL)"], lines
        # Server entries.
        assert w.cmd('SETMETADATA "" (/private/vendor/mss/theme "sombre")')[0] == "OK"
        _, lines = w.cmd('GETMETADATA "" (/private/vendor/mss/theme /shared/admin)')
        assert lines == [b'* METADATA "" (/private/vendor/mss/theme "sombre" '
                         b"/shared/admin NIL)"], lines
        status, _ = w.cmd('SETMETADATA "" (/shared/comment "x")')
        assert status == "NO" and b"[NOPERM]" in w.last_tagged
        for bad in ("/foo/bar", "/shared", "/shared//comment", "/shared/comment/",
                    "/shared/comm%nt", "/shared/c*", "comment"):
            assert w.cmd(f'GETMETADATA INBOX "{bad}"')[0] == "BAD", bad
            assert w.cmd(f'SETMETADATA INBOX ("{bad}" "v")')[0] == "BAD", bad
        assert w.cmd("GETMETADATA Nowhere /shared/comment")[0] == "NO"
        w.close()

    await asyncio.to_thread(run)


async def test_metadata_limits_and_rights(tmp_path: Path, dev_pki) -> None:  # type: ignore[no-untyped-def]
    """RFC 5464 §4.3: a value over the server's size is ``NO [METADATA MAXSIZE n]``, more
    entries than allowed ``NO [METADATA TOOMANY]``, and then nothing of the command is
    stored. RFC 4314 rights: a delegate with ``l r`` reads /shared entries of the shared
    mailbox and keeps /private ones of their own, but cannot write /shared ones without
    ``w`` (``NO [NOPERM]``). Values are sealed on disk (not in the database file in
    clear)."""
    from tests.fixtures.imap import start_imap_env

    env = await start_imap_env(tmp_path / "data", dev_pki, {"imap": {
        "metadata_max_size": 100, "metadata_max_entries": 3}})
    try:
        db = env.gateway.db
        assert db is not None
        await add_mailbox(db, "secretariat@mssante.test", type="ORG", name="Secretariat")
        await delegations.grant(db, "secretariat@mssante.test", ALICE, "lrs")
        await delegations.grant(db, "secretariat@mssante.test", BOB, delegations.ALL_RIGHTS)
        shared = '"Shared/secretariat@mssante.test/INBOX"'

        def run() -> None:
            w = Wire(env)
            status, _ = w.cmd(f'SETMETADATA INBOX (/private/a "{"x" * 101}" /private/b "ok")')
            assert status == "NO" and b"[METADATA MAXSIZE 100]" in w.last_tagged
            status, _ = w.cmd('SETMETADATA INBOX (/private/a "1" /private/b "2" /private/c '
                              '"3" /shared/d "4")')
            assert status == "NO" and b"[METADATA TOOMANY]" in w.last_tagged, w.last_tagged
            _, lines = w.cmd("GETMETADATA INBOX (/private/a /private/b)")
            assert lines == [b"* METADATA INBOX (/private/a NIL /private/b NIL)"], lines
            assert w.cmd('SETMETADATA INBOX (/private/a "Qz7METADUPONT")')[0] == "OK"
            bob = Wire(env, BOB)
            assert bob.cmd(f'SETMETADATA {shared} (/shared/comment "Accueil")')[0] == "OK"
            bob.close()
            _, lines = w.cmd(f"GETMETADATA {shared} /shared/comment")
            assert lines[0].endswith(b'(/shared/comment "Accueil")'), lines
            status, _ = w.cmd(f'SETMETADATA {shared} (/shared/comment "x")')
            assert status == "NO" and b"[NOPERM]" in w.last_tagged
            assert w.cmd(f'SETMETADATA {shared} (/private/comment "moi")')[0] == "OK"
            bob = Wire(env, BOB)
            _, lines = bob.cmd(f"GETMETADATA {shared} /private/comment")
            assert lines[0].endswith(b"(/private/comment NIL)"), lines  # Alice's own
            bob.close()
            w.close()

        await asyncio.to_thread(run)
        url = env.settings.database_url
        path = url.split("///", 1)[1]
        with sqlite3.connect(path) as conn:
            values = [bytes(v) for (v,) in conn.execute("SELECT value FROM annotations")]
        assert values and not any(b"Qz7METADUPONT" in v for v in values)
    finally:
        await env.gateway.stop(grace=0)
