"""Message bodies to the letter: quoted-printable under BINARY, NUL in BODY[], lines and
boundaries of multipart text parts, message/rfc822 under an encoding, and message/global
before UTF-8 is enabled. Every BODYSTRUCTURE here goes through the strict grammar."""

from __future__ import annotations

import asyncio
import base64
import re

from tests.fixtures.imap import ImapEnv
from tests.imap.imap_grammar import GrammarError, Reader, check_body
from tests.imap.rfc_wire import Wire

HEAD = (b"From: bob@mssante.test\r\nTo: alice@mssante.test\r\nSubject: corps\r\n"
        b"Date: Mon, 6 Jan 2025 10:00:00 +0100\r\nMIME-Version: 1.0\r\n")


def _structure(resp: bytes, *, utf8: bool = False, name: bytes = b"BODYSTRUCTURE") -> bytes:
    """The body structure of a FETCH response, checked against the strict grammar."""
    at = resp.index(name + b" (") + len(name) + 1
    r = Reader(resp, utf8=utf8)
    r.pos = at
    r.body(extended=name == b"BODYSTRUCTURE")
    return resp[at:r.pos]


def _literal_of(resp: bytes, item: bytes) -> tuple[bytes, bytes]:
    """(``{n}`` or ``~{n}`` prefix, content) of ``item`` in a FETCH response."""
    m = re.search(re.escape(item) + rb" (~?\{(\d+)\})\r\n", resp)
    assert m is not None, resp[:200]
    start = m.end()
    return m.group(1), resp[start:start + int(m.group(2))]


async def test_binary_quoted_printable_trailing_space_and_soft_breaks(
        imap_env: ImapEnv) -> None:
    """RFC 2045 §6.7 rule 3: trailing white space of an encoded line is removed; rule 5: a
    ``=`` followed by white space then the line break is a soft line break. RFC 3516 §4.2:
    BINARY.SIZE counts the decoded octets."""
    body = (b"ligne finie par des blancs  \t\r\n"
            b"coupure=  \r\n"
            b"douce=\t\r\n"
            b"fin =C3=A9t=C3=A9=20\r\n")
    decoded = "ligne finie par des blancs\r\ncoupuredoucefin été \r\n".encode()
    raw = (HEAD + b"Content-Type: text/plain; charset=utf-8\r\n"
           b"Content-Transfer-Encoding: quoted-printable\r\n\r\n" + body)
    await imap_env.deliver(raw)

    def run() -> None:
        w = Wire(imap_env)
        w.cmd("SELECT INBOX")
        _, lines = w.cmd("FETCH 1 (BINARY.PEEK[1] BINARY.SIZE[1])")
        _, content = _literal_of(lines[0], b"BINARY[1]")
        assert content == decoded
        assert b"BINARY.SIZE[1] %d" % len(decoded) in lines[0], lines
        w.close()
    await asyncio.to_thread(run)


async def test_body_section_never_sends_nul_in_a_literal(imap_env: ImapEnv) -> None:
    """RFC 9051 §4.3 and §9 (``literal = … *CHAR8``, CHAR8 excludes NUL) and RFC 3516 §4.2
    (``literal8`` only in BINARY responses): BODY[…], RFC822 and RFC822.TEXT of content
    holding NUL are plain literals of the same size, each NUL sent as octet 0x80 (as
    Dovecot does); BINARY[…] gives the exact octets in a literal8."""
    text = b"avant\x00apres\r\n\x00\r\n"
    raw = HEAD + b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + text

    def run() -> None:
        w = Wire(imap_env)
        status, _ = w.append("Drafts", raw, literal8=True)  # RFC 3516 §4.3
        assert status == "OK", w.last_tagged
        w.cmd("SELECT Drafts")
        _, lines = w.cmd("FETCH 1 (BODY.PEEK[1] BODY.PEEK[] RFC822.TEXT RFC822.SIZE)")
        resp = lines[0]
        for item in (b"BODY[1]", b"BODY[]", b"RFC822.TEXT"):
            prefix, content = _literal_of(resp, item)
            assert prefix.startswith(b"{"), (item, prefix)
            assert b"\x00" not in content
        assert _literal_of(resp, b"BODY[1]")[1] == text.replace(b"\x00", b"\x80")
        assert b"RFC822.SIZE %d" % len(raw) in resp
        _, lines = w.cmd("FETCH 1 (BINARY.PEEK[1])")
        prefix, content = _literal_of(lines[0], b"BINARY[1]")
        assert prefix.startswith(b"~{") and content == text
        w.close()
    await asyncio.to_thread(run)


def _multipart(parts: list[bytes], boundary: bytes = b"B") -> bytes:
    out = HEAD + b'Content-Type: multipart/mixed; boundary="' + boundary + b'"\r\n\r\n'
    for p in parts:
        out += b"--" + boundary + b"\r\n" + p
    return out + b"--" + boundary + b"--\r\n"


async def test_text_part_lines_count_crlf_terminated_lines(imap_env: ImapEnv) -> None:
    """RFC 2046 §5.1.1: the CRLF before a boundary belongs to the boundary, so a text part
    written ``un\\r\\ndeux\\r\\n--B`` holds ``un\\r\\ndeux``: one CRLF-terminated line (RFC
    3501 §7.4.2 body-fld-lines), 8 octets, and BODY[1] is those 8 octets."""
    raw = _multipart([
        b"Content-Type: text/plain\r\n\r\nun\r\ndeux\r\n",
        b"Content-Type: text/plain\r\n\r\ntrois\r\nquatre\r\n\r\n",
        b"Content-Type: text/plain\r\n\r\n",
    ])
    await imap_env.deliver(raw)

    def run() -> None:
        w = Wire(imap_env)
        w.cmd("SELECT INBOX")
        _, lines = w.cmd("FETCH 1 (BODYSTRUCTURE BODY.PEEK[1] BODY.PEEK[2] BODY.PEEK[3])")
        structure = _structure(lines[0])
        parts = re.findall(rb'"7bit" (\d+) (\d+) NIL', structure)
        assert parts == [(b"8", b"1"), (b"15", b"2"), (b"0", b"0")], structure
        assert _literal_of(lines[0], b"BODY[1]")[1] == b"un\r\ndeux"
        assert _literal_of(lines[0], b"BODY[2]")[1] == b"trois\r\nquatre\r\n"
        w.close()
    await asyncio.to_thread(run)


async def test_boundary_lines_follow_the_grammar(imap_env: ImapEnv) -> None:
    """RFC 2046 §5.1.1 (the BNF: ``delimiter transport-padding CRLF``): a line that starts
    with ``--`` + boundary is a delimiter when only spaces and tabs follow (``--`` first for
    the close delimiter); one that continues with other characters (``--Bnd suite``,
    ``--Bndx``, ``--Bnd--fin``) is content, as is a line where the boundary does not start
    the line. The reading is documented in :func:`mail.mime.split_multipart`."""
    raw = (HEAD + b'Content-Type: multipart/mixed; boundary="Bnd"\r\n\r\npreambule\r\n'
           b"--Bnd \t\r\nContent-Type: text/plain\r\n\r\nun\r\n x--Bnd pas une limite\r\n"
           b"--Bnd suivie de texte\r\n--Bndx\r\n--Bnd--fin\r\n"
           b"--Bnd\r\nContent-Type: text/plain\r\n\r\ndeux\r\n"
           b"--Bnd-- \t\r\nepilogue\r\n--Bnd\r\n")
    await imap_env.deliver(raw)

    def run() -> None:
        w = Wire(imap_env)
        w.cmd("SELECT INBOX")
        _, lines = w.cmd("FETCH 1 (BODYSTRUCTURE BODY.PEEK[1] BODY.PEEK[2] BODY.PEEK[3])")
        structure = _structure(lines[0])
        assert structure.count(b'("text" "plain"') == 2, structure
        assert _literal_of(lines[0], b"BODY[1]")[1] == (
            b"un\r\n x--Bnd pas une limite\r\n--Bnd suivie de texte\r\n--Bndx\r\n--Bnd--fin")
        assert _literal_of(lines[0], b"BODY[2]")[1] == b"deux"
        assert _literal_of(lines[0], b"BODY[3]")[1] == b""  # the epilogue is not a part
        w.close()
    await asyncio.to_thread(run)


_INNER = (b"From: carol@mssante.test\r\nSubject: joint\r\nMessage-ID: <in@x>\r\n\r\n"
          b"texte joint\r\n")


async def test_encoded_message_rfc822_is_a_basic_body(imap_env: ImapEnv) -> None:
    """RFC 2046 §5.2.1 forbids any encoding but 7bit, 8bit and binary for message/rfc822;
    RFC 3501 §9 body-type-msg needs envelope, body and lines, which an encoded part does
    not give as stored. Such a part is shown as a basic body ``application/octet-stream``
    with its encoding, so BINARY[2] decodes it; the answer parses with the strict grammar."""
    for cte, payload in ((b"base64", base64.encodebytes(_INNER).replace(b"\n", b"\r\n")),
                         (b"quoted-printable", _INNER)):
        await imap_env.deliver(_multipart([
            b"Content-Type: text/plain\r\n\r\nvoir la piece jointe\r\n",
            b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: " + cte + b"\r\n\r\n"
            + payload,
        ]))

    def run() -> None:
        w = Wire(imap_env)
        w.cmd("SELECT INBOX")
        for n in (1, 2):
            _, lines = w.cmd(f"FETCH {n} (BODYSTRUCTURE BODY BINARY.PEEK[2])")
            structure = _structure(lines[0])
            _structure(lines[0], name=b"BODY")
            assert b'("application" "octet-stream" NIL NIL NIL "' in structure, structure
            assert b'"message" "rfc822"' not in structure.lower(), structure
            # The last CRLF before the boundary is the delimiter's (RFC 2046 §5.1.1).
            expected = _INNER if n == 1 else _INNER[:-2]
            assert _literal_of(lines[0], b"BINARY[2]")[1] == expected
        w.close()
    await asyncio.to_thread(run)


async def test_message_global_is_basic_until_utf8_is_enabled(imap_env: ImapEnv) -> None:
    """RFC 3501 §9 media-message is ``"MESSAGE" "RFC822"`` only: before ENABLE
    UTF8=ACCEPT or IMAP4rev2, message/global (RFC 6532 §3.7) is a basic body; after it,
    RFC 9051 §7.5.2 gives it the message/rfc822 shape (envelope, body, lines)."""
    await imap_env.deliver(_multipart([
        b"Content-Type: text/plain\r\n\r\nvoir\r\n",
        b"Content-Type: message/global\r\n\r\n" + _INNER,
    ]))

    def run() -> None:
        w = Wire(imap_env)
        w.cmd("SELECT INBOX")
        _, lines = w.cmd("FETCH 1 (BODYSTRUCTURE BODY)")
        for name in (b"BODYSTRUCTURE", b"BODY"):
            structure = _structure(lines[0], name=name)
            assert b'("message" "global" NIL NIL NIL "7bit" %d' % (len(_INNER) - 2) in structure
            assert b"carol" not in structure, structure
        w.close()
        w = Wire(imap_env)
        w.cmd("ENABLE UTF8=ACCEPT")
        w.cmd("SELECT INBOX")
        _, lines = w.cmd("FETCH 1 (BODYSTRUCTURE)")
        structure = _structure(lines[0], utf8=True)
        assert b'"carol" "mssante.test"' in structure, structure
        try:
            _structure(lines[0], utf8=False)
        except GrammarError:
            pass
        else:
            raise AssertionError("the rev2 shape must not parse as IMAP4rev1")
        w.close()
    await asyncio.to_thread(run)


def test_grammar_checker_refuses_what_it_should() -> None:
    """The checker itself (RFC 3501 §9): an encoded message/rfc822 without envelope, a
    BODY with extension data and a NUL in a literal are refused."""
    bad = (b'("message" "rfc822" NIL NIL NIL "base64" 302 NIL NIL NIL NIL)',)
    for data in bad:
        try:
            check_body(data, extended=True)
        except GrammarError:
            continue
        raise AssertionError(data)
    check_body(b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 3 1)', extended=False)
    try:
        check_body(b'("text" "plain" NIL NIL NIL "7bit" 3 1 NIL NIL NIL NIL)', extended=False)
    except GrammarError:
        pass
    else:
        raise AssertionError("BODY has no extension data")
    r = Reader(b"{3}\r\na\x00b")
    try:
        r.string()
    except GrammarError:
        pass
    else:
        raise AssertionError("NUL in a literal")


def _hostile() -> list[bytes]:
    """Structures that stretch the renderer: nesting past the limit, encoded and digest
    messages, a multipart without boundary or delimiter, groups, NUL and 8-bit text."""
    deep = HEAD + b"Content-Type: message/rfc822\r\n\r\n"
    for _ in range(60):
        deep += b"Subject: x\r\nContent-Type: message/rfc822\r\n\r\n"
    deep += b"Subject: fin\r\n\r\nfin\r\n"
    return [
        deep,
        _multipart([b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n"
                    + base64.encodebytes(_INNER).replace(b"\n", b"\r\n")]),
        HEAD + b"Content-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\n" + _INNER
        + b"--d\r\nContent-Type: message/global\r\n\r\n" + _INNER + b"--d--\r\n",
        HEAD + b"Content-Type: multipart/mixed\r\n\r\nno boundary\r\n",
        HEAD + b"Content-Type: multipart/mixed; boundary=x\r\n\r\nno delimiter\r\n",
        b"To: Groupe: a@x, b@y;, undisclosed:;\r\nSubject: =?utf-8?q?=C3=A9t=C3=A9?=\r\n"
        b"From: \"Dr \\\"X\\\"\" <x@y>\r\n\r\ncorps\x00\xe9\r\n",
        _multipart([b"Content-Type: text/plain; name*0*=UTF-8''%C3%A9; name*1=\"x y\"\r\n"
                    b"Content-Disposition: attachment; filename=\"a\\\"b\"\r\n"
                    b"Content-Language: fr, en\r\nContent-Location: http://x/y\r\n\r\nt"]),
    ]


def test_every_rendered_structure_parses_with_the_strict_grammar() -> None:
    """RFC 3501 §9 body / body-type-msg / body-ext-*: BODY and BODYSTRUCTURE of the message
    corpus and of hostile structures parse strictly, for IMAP4rev1 (message/global made a
    basic body) and after UTF-8 is enabled."""
    from pathlib import Path

    from imap.commands.fetch import _structure
    from mail.views import build_view

    corpus = Path(__file__).parent.parent / "mail" / "corpus"
    messages = [p.read_bytes() for p in sorted(corpus.glob("*.eml"))] + _hostile()
    assert len(messages) >= 15
    for raw in messages:
        view = build_view(raw)
        for utf8 in (False, True):
            check_body(_structure(view.body, utf8), extended=False, utf8=utf8)
            check_body(_structure(view.bodystructure, utf8), extended=True, utf8=utf8)
