"""Response writer tests."""

from __future__ import annotations

import imaplib

import pytest

from imap.protocol import (
    Atom,
    ImapRefusal,
    Literal,
    ResponseCode,
    SequenceSet,
    bye,
    continuation,
    encode_astring,
    encode_mailbox,
    encode_string,
    fetch_response,
    serialize,
    tagged,
    untagged,
    untagged_data,
)


def test_tagged_with_codes() -> None:
    assert tagged("a1", "OK", "LOGIN completed") == b"a1 OK LOGIN completed\r\n"
    assert (
        tagged("a", "NO", "No such mailbox", "TRYCREATE") == b"a NO [TRYCREATE] No such mailbox\r\n"
    )
    code = ResponseCode.copyuid(
        38505, SequenceSet.from_ints([304, 319, 320]), SequenceSet.from_ints([3956, 3957, 3958])
    )
    assert tagged("a", "OK", "Done", code) == b"a OK [COPYUID 38505 304,319:320 3956:3958] Done\r\n"
    assert (
        tagged("a", "OK", "x", ResponseCode.appenduid(38505, 3955))
        == b"a OK [APPENDUID 38505 3955] x\r\n"
    )
    assert b"[PERMANENTFLAGS (\\Seen \\*)]" in untagged(
        "OK", "Limited", ResponseCode.permanentflags(["\\Seen", "\\*"])
    )
    for name in (
        "AUTHENTICATIONFAILED",
        "TOOBIG",
        "ALREADYEXISTS",
        "NONEXISTENT",
        "CANNOT",
        "NOPERM",
        "LIMIT",
        "OVERQUOTA",
        "INUSE",
        "SERVERBUG",
        "CLIENTBUG",
    ):
        assert tagged("t", "NO", "x", name) == b"t NO [%s] x\r\n" % name.encode()
    assert untagged("OK", "u", ResponseCode.uidnext(4392)) == b"* OK [UIDNEXT 4392] u\r\n"
    assert b"[UIDVALIDITY 3857529045]" in untagged("OK", "u", ResponseCode.uidvalidity(3857529045))
    assert b"[HIGHESTMODSEQ 715194045007]" in untagged(
        "OK", "h", ResponseCode.highestmodseq(715194045007)
    )
    assert b"[CAPABILITY IMAP4rev1 IDLE]" in untagged(
        "OK", "c", ResponseCode.capability(["IMAP4rev1", "IDLE"])
    )


def test_refusals_of_bad_values() -> None:
    with pytest.raises(ValueError):
        tagged("a", "MAYBE", "x")
    with pytest.raises(ValueError):
        ResponseCode("bad code")
    with pytest.raises(ValueError):
        ResponseCode("X", "a]b")
    with pytest.raises(ValueError):
        ImapRefusal("OK", None, "x")


def test_text_is_kept_on_one_line() -> None:
    assert tagged("a", "NO", "bad\r\n* OK injected") == b"a NO bad  * OK injected\r\n"
    assert bye("Server shutting down") == b"* BYE Server shutting down\r\n"
    assert continuation() == b"+ Ready for literal data\r\n"
    assert continuation("") == b"+ \r\n"  # empty SASL challenge
    assert continuation("dGVzdA==") == b"+ dGVzdA==\r\n"


def test_string_encoding_choice() -> None:
    assert encode_string("hello") == b'"hello"'
    assert encode_string('a"b\\c') == b'"a\\"b\\\\c"'
    assert encode_string("line\r\nbreak") == b"{11}\r\nline\r\nbreak"
    assert encode_string("été") == b"{5}\r\n\xc3\xa9t\xc3\xa9"
    assert encode_string("été", utf8=True) == b'"\xc3\xa9t\xc3\xa9"'
    assert encode_string("x" * 2000).startswith(b"{2000}\r\n")
    assert encode_astring("INBOX") == b"INBOX"
    assert encode_astring("NIL") == b'"NIL"'
    assert encode_astring("") == b'""'
    assert encode_astring("a b") == b'"a b"'
    assert encode_mailbox("~peter/mail/台北/日本語") == b"~peter/mail/&U,BTFw-/&ZeVnLIqe-"
    assert encode_mailbox("台北", utf8=True) == b'"\xe5\x8f\xb0\xe5\x8c\x97"'


def test_serialize_and_untagged_data() -> None:
    assert serialize([None, 3, "x", Atom("\\Seen"), [b"a", []]]) == b'(NIL 3 "x" \\Seen ("a" ()))'
    assert serialize(Literal(b"\x00z", binary=True)) == b"~{2}\r\n\x00z"
    assert untagged_data(172, "EXISTS") == b"* 172 EXISTS\r\n"
    assert untagged_data("LIST", [Atom("\\HasNoChildren")], b"/", encode_mailbox_atom("Sent")) == (
        b'* LIST (\\HasNoChildren) "/" Sent\r\n'
    )
    assert untagged_data(
        "VANISHED", Atom("(EARLIER)"), SequenceSet.from_ints([41, 42, 43, 50])
    ) == (b"* VANISHED (EARLIER) 41:43,50\r\n")
    with pytest.raises(TypeError):
        serialize(True)


def encode_mailbox_atom(name: str) -> Atom:
    return Atom(encode_mailbox(name).decode("ascii"))


def test_fetch_response_is_readable_by_imaplib() -> None:
    body = b"Subject: hi\r\n\r\n" + b"x" * 100_000
    data = fetch_response(
        12,
        [
            ("UID", 4827313),
            ("FLAGS", [Atom("\\Seen")]),
            ("BODY[]<0>", Literal(body)),
            ("MODSEQ", [624140003]),
        ],
    )
    assert data.startswith(b"* 12 FETCH (UID 4827313 FLAGS (\\Seen) BODY[]<0> {100015}\r\nSubject")
    assert data.endswith(b" MODSEQ (624140003))\r\n")
    # The standard library client parses the literal out of the same bytes.
    lit = imaplib.Literal.match(data.split(b"\r\n", 1)[0])
    assert lit is not None and int(lit.group("size")) == len(body)


def test_imap_refusal_carries_its_reply() -> None:
    err = ImapRefusal("NO", "TRYCREATE", "Mailbox does not exist")
    assert err.response("a5") == b"a5 NO [TRYCREATE] Mailbox does not exist\r\n"
    assert err.response(None) == b"* NO [TRYCREATE] Mailbox does not exist\r\n"
    over = ImapRefusal("NO", ResponseCode("OVERQUOTA"), "Quota exceeded")
    assert over.response("t") == b"t NO [OVERQUOTA] Quota exceeded\r\n"
    assert ImapRefusal("BYE", None, "Too many errors").response("t") == b"* BYE Too many errors\r\n"
