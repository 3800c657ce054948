"""SEARCH to the letter: empty HEADER strings, group names in address fields, and the
MODSEQ of ESEARCH MIN/MAX."""

from __future__ import annotations

import asyncio

from tests.fixtures.imap import BOB, ImapEnv, message
from tests.imap.rfc_wire import Wire


def _bare(n: int, headers: str) -> bytes:
    return (f"{headers}Date: Mon, 6 Jan 2025 10:00:00 +0100\r\nMessage-ID: <b{n}@mssante.test>"
            f"\r\n\r\nCorps {n}\r\n").encode()


async def test_header_empty_string_needs_the_field(imap_env: ImapEnv) -> None:
    """RFC 3501 §6.4.4 / RFC 9051 §6.4.4: ``HEADER <field> ""`` matches the messages that
    have the field, whatever its value, and no other; alike for Subject, From, To, Cc and
    any other field, with or without other criteria."""
    await imap_env.deliver(_bare(1, "From: a@mssante.test\r\nTo: b@mssante.test\r\n"
                                    "Subject: un\r\nCc: c@mssante.test\r\nX-Lab: 1\r\n"))
    await imap_env.deliver(_bare(2, "Subject:\r\n"))  # present, empty
    await imap_env.deliver(_bare(3, "X-Other: 1\r\n"))  # none of them

    def run() -> None:
        w = Wire(imap_env)
        w.cmd("SELECT INBOX")
        expected = {"Subject": b"* SEARCH 1 2", "From": b"* SEARCH 1", "To": b"* SEARCH 1",
                    "Cc": b"* SEARCH 1", "X-Lab": b"* SEARCH 1", "Bcc": b"* SEARCH"}
        for field, answer in expected.items():
            status, lines = w.cmd(f'SEARCH HEADER {field} ""')
            assert status == "OK" and lines == [answer], (field, lines)
            status, lines = w.cmd(f'UID SEARCH NOT DELETED HEADER {field} ""')
            assert lines == [answer], (field, lines)
            status, lines = w.cmd(f'SEARCH NOT HEADER {field} ""')
            missing = sorted({1, 2, 3} - {int(x) for x in answer.split()[2:]})
            assert lines == [b"* SEARCH" + b"".join(b" %d" % n for n in missing)], lines
        w.close()
    await asyncio.to_thread(run)


async def test_address_search_finds_group_names(imap_env: ImapEnv) -> None:
    """RFC 3501 §6.4.4: TO, CC, FROM and BCC match a substring of the field; the display
    name of an RFC 5322 §3.4 group (``groupname: a@x, b@y;``) is part of it."""
    await imap_env.deliver(_bare(1, "From: Cardiologie: bob@mssante.test;\r\n"
                                    "To: Service Urgences: a@mssante.test, b@mssante.test;\r\n"
                                    "Cc: =?utf-8?q?=C3=89quipe_de_nuit?=:;\r\n"
                                    "Bcc: Secret: c@mssante.test;\r\nSubject: groupes\r\n"))
    await imap_env.deliver(message(2))

    def run() -> None:
        w = Wire(imap_env)
        w.cmd("SELECT INBOX")
        for criteria, answer in (("TO urgences", b"* SEARCH 1"),
                                 ('TO "service urgences"', b"* SEARCH 1"),
                                 ("FROM cardiologie", b"* SEARCH 1"),
                                 ("CC {15+}\r\n\u00e9quipe de nuit", b"* SEARCH 1"),
                                 ("BCC secret", b"* SEARCH 1"),
                                 ("TO b@mssante.test", b"* SEARCH 1"),
                                 (f"FROM {BOB}", b"* SEARCH 1 2"),
                                 ("OR TO urgences SUBJECT compte", b"* SEARCH 1 2")):
            cmd = f"SEARCH CHARSET UTF-8 {criteria}".encode()
            status, lines = w.cmd(cmd)
            assert status == "OK" and lines == [answer], (criteria, lines, w.last_tagged)
        w.close()
    await asyncio.to_thread(run)


async def test_esearch_min_max_modseq_is_that_of_the_returned_messages(
        imap_env: ImapEnv) -> None:
    """RFC 7162 §3.1.5 (with RFC 4731 §3.1): with MIN and/or MAX and no ALL or COUNT, the
    MODSEQ returned is the highest of the messages returned; with ALL or COUNT it is the
    highest of every match."""
    for n in range(1, 4):
        await imap_env.deliver(message(n))

    def run() -> None:
        w = Wire(imap_env)
        w.cmd("SELECT INBOX")
        w.cmd("STORE 2 +FLAGS (\\Flagged)")  # 2 gets the highest MODSEQ
        w.cmd("STORE 3 +FLAGS ($Tri)")
        w.cmd("STORE 2 +FLAGS ($Tri2)")
        _, lines = w.cmd("FETCH 1:3 (MODSEQ)")
        modseq = {int(x.split()[1]): int(x.split(b"MODSEQ (")[1].split(b")")[0]) for x in lines
                  if b" FETCH " in x}
        assert modseq[2] > modseq[3] > modseq[1], modseq
        cases = (("MIN", f"MIN 1 MODSEQ {modseq[1]}"),
                 ("MAX", f"MAX 3 MODSEQ {modseq[3]}"),
                 ("MIN MAX", f"MIN 1 MAX 3 MODSEQ {max(modseq[1], modseq[3])}"),
                 ("ALL", f"ALL 1:3 MODSEQ {modseq[2]}"),
                 ("MIN COUNT", f"MIN 1 COUNT 3 MODSEQ {modseq[2]}"))
        for returns, answer in cases:
            _, lines = w.cmd(f"SEARCH RETURN ({returns}) MODSEQ 1")
            assert len(lines) == 1 and lines[0].endswith(answer.encode()), (returns, lines)
        w.close()
    await asyncio.to_thread(run)
