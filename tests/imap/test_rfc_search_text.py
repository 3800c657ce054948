"""SEARCH BODY and TEXT match the decoded text of the message (RFC 9051 §6.4.4), indexed
sealed at accept time, decoded on the fly for messages stored before or too large."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

from sqlalchemy import select, update

from storage import metadata
from storage.messages import KEY_COLUMNS, WITH_KEYS, open_fields, open_text
from storage.schema import messages
from tests.fixtures.imap import ImapEnv, start_imap_env
from tests.fixtures.pki import DevPkiBundle
from tests.imap.rfc_wire import Wire

_HEAD = ("From: a@mssante.test\r\nTo: b@mssante.test\r\nDate: Mon, 6 Jan 2025 10:00:00 +0100"
         "\r\nMIME-Version: 1.0\r\n")

QP_WITH_PDF = (
    _HEAD + "Subject: =?utf-8?q?Compte_rendu_=C3=A9cho?=\r\nMessage-ID: <t1@mssante.test>\r\n"
    "Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n"
    "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable"
    "\r\n\r\nR=C3=A9sultat de l'=C3=A9chographie : normal, contr=\r\n\u00f4le dans un an.\r\n"
    "--B\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    + base64.b64encode(b"secret cardiomegalie").decode() + "\r\n--B--\r\n"
).encode()
LATIN1_BASE64 = (
    _HEAD + "Subject: biologie\r\nMessage-ID: <t2@mssante.test>\r\n"
    "Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    + base64.encodebytes("Hématologie : numération normale.\r\n".encode("latin-1")).decode()
    .replace("\n", "\r\n")
).encode()
LITERAL_QP_TEXT = (
    _HEAD + "Subject: notes\r\nMessage-ID: <t3@mssante.test>\r\n"
    "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    "Le code =C3=A9 est \u00e9crit tel quel.\r\n"
).encode()


def _search(w: Wire, criteria: str) -> bytes:
    word = criteria.split(" ", 1)[1].encode()
    status, lines = w.cmd(b"SEARCH CHARSET UTF-8 " + criteria.split(" ", 1)[0].encode()
                          + b" {%d+}\r\n" % len(word) + word)
    assert status == "OK", w.last_tagged
    [line] = lines
    return line


def _check_answers(env: ImapEnv) -> None:
    w = Wire(env)
    w.cmd("SELECT INBOX")
    for criteria, answer in (
        ("BODY résultat", b"* SEARCH 1"),  # quoted-printable, decoded
        ("BODY contrôle", b"* SEARCH 1"),  # across a soft line break
        ("BODY =C3=A9", b"* SEARCH 3"),  # the encoding itself is no longer text
        ("BODY numération", b"* SEARCH 2"),  # base64, ISO-8859-1 converted
        ("BODY NUMÉRATION", b"* SEARCH 2"),  # case-insensitive beyond ASCII
        ("BODY cardiomegalie", b"* SEARCH"),  # an application/pdf part is not text
        ("BODY c2VjcmV0", b"* SEARCH"),  # nor is its base64
        ("BODY écho", b"* SEARCH 1"),  # body only: the subject's "écho" is not needed
        ("BODY biologie", b"* SEARCH"),  # the header is not the body
        ("TEXT biologie", b"* SEARCH 2"),  # TEXT: header…
        ("TEXT rendu écho", b"* SEARCH 1"),  # …with encoded words decoded
        ("TEXT échographie", b"* SEARCH 1"),  # …or body
        ("TEXT écrit", b"* SEARCH 3"),
    ):
        assert _search(w, criteria) == answer, (criteria, w.traffic[-2:])
    w.close()


async def _deliver_all(env: ImapEnv) -> None:
    for raw in (QP_WITH_PDF, LATIN1_BASE64, LITERAL_QP_TEXT):
        await env.deliver(raw)


async def test_body_and_text_match_decoded_text(imap_env: ImapEnv) -> None:
    """RFC 9051 §6.4.4: BODY and TEXT look for the string in the message's text, case-
    insensitively; the content transfer encodings (RFC 2045 §6.7 quoted-printable, §6.8
    base64) and the charset (RFC 2046 §4.1.2) are undone first, so ``=C3=A9`` is found
    only where it is written as such. Only text parts are text. The decoded text is kept
    sealed with the search fields, never in clear."""
    await _deliver_all(imap_env)
    db = imap_env.gateway.db
    assert db is not None
    async with db.read() as conn:
        rows = (await conn.execute(select(
            messages.c.id, messages.c.sealed_fields, messages.c.blob_id, *KEY_COLUMNS
        ).select_from(WITH_KEYS).order_by(messages.c.id))).all()
    texts = [open_text(db.blobs, *r[1:]) for r in rows]
    assert texts[0] is not None and "résultat de l'échographie" in texts[0]
    assert "cardiomegalie" not in texts[0]
    assert b"sultat" not in bytes(rows[0][1])
    await asyncio.to_thread(_check_answers, imap_env)


async def test_messages_stored_before_the_index_are_decoded(imap_env: ImapEnv) -> None:
    """RFC 9051 §6.4.4 for messages stored before the decoded text was indexed (search
    fields without it): SEARCH decodes them when asked, with the same answers."""
    await _deliver_all(imap_env)
    db = imap_env.gateway.db
    assert db is not None
    async with db.begin() as conn:
        rows = (await conn.execute(select(
            messages.c.id, messages.c.sealed_fields, messages.c.blob_id, *KEY_COLUMNS
        ).select_from(WITH_KEYS))).all()
        for mid, sealed, blob_id, key_id, wrapped, sha in rows:
            old = metadata.pack_fields(open_fields(db.blobs, sealed, blob_id, key_id, wrapped,
                                                   sha))
            key = db.blobs.metadata_key(blob_id, key_id, wrapped, sha)
            await conn.execute(update(messages).where(messages.c.id == mid).values(
                sealed_fields=key.seal(metadata.FIELDS, old)))
    async with db.read() as conn:
        rows = (await conn.execute(select(
            messages.c.sealed_fields, messages.c.blob_id, *KEY_COLUMNS
        ).select_from(WITH_KEYS))).all()
    assert all(open_text(db.blobs, *r) is None for r in rows)
    await asyncio.to_thread(_check_answers, imap_env)


async def test_text_over_the_index_limit_is_decoded_when_searched(
        tmp_path: Path, dev_pki: DevPkiBundle) -> None:
    """RFC 9051 §6.4.4 for a message whose text is over ``[storage] search_text_max``: it
    is not indexed, and SEARCH decodes it when asked."""
    env = await start_imap_env(tmp_path / "data", dev_pki,
                               {"storage": {"search_text_max": 10}})
    try:
        await _deliver_all(env)
        await asyncio.to_thread(_check_answers, env)
    finally:
        await env.gateway.stop(grace=0)
