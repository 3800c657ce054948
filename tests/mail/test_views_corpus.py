"""The corpus under ``corpus/`` against ENVELOPE / BODY / BODYSTRUCTURE written by hand.

Every expected string below was written from the grammar of RFC 3501 §7.4.2 / §9 and the
conventions documented in :mod:`mail.bodystructure` and :mod:`mail.addresses`, with sizes and
line counts counted by hand; none was produced by the code under test.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from imapclient.response_parser import parse_fetch_response

from mail.imapstring import wire_bytes
from mail.views import Attachment, MessageView, build_view

CORPUS = Path(__file__).parent / "corpus"

WA = '"Wed, 13 Mar 2024 17:30:00 +0100"'

EXPECTED: dict[str, dict[str, str]] = {
    # RFC 3501 §7.4.2 example envelope, byte for byte (the cc header is folded in the file).
    "simple": {
        "envelope": (
            '("Wed, 17 Jul 1996 02:23:25 -0700 (PDT)" "IMAP4rev1 WG mtg summary and minutes"'
            ' (("Terry Gray" NIL "gray" "cac.washington.edu"))'
            ' (("Terry Gray" NIL "gray" "cac.washington.edu"))'
            ' (("Terry Gray" NIL "gray" "cac.washington.edu"))'
            ' ((NIL NIL "imap" "cac.washington.edu"))'
            ' ((NIL NIL "minutes" "CNRI.Reston.VA.US")("John Klensin" NIL "KLENSIN" "MIT.EDU"))'
            ' NIL NIL "<B27397-0100000@cac.washington.edu>")'
        ),
        "body": '("TEXT" "PLAIN" ("charset" "US-ASCII") NIL NIL "7bit" 27 2)',
        "bodystructure": (
            '("TEXT" "PLAIN" ("charset" "US-ASCII") NIL NIL "7bit" 27 2 NIL NIL NIL NIL)'
        ),
    },
    "nested": {
        "envelope": (
            '("Tue, 05 Mar 2024 10:15:00 +0100" "Nested structure"'
            ' (("Alice Martin" NIL "alice.martin" "hopital-a.mssante.fr"))'
            ' (("Alice Martin" NIL "alice.martin" "hopital-a.mssante.fr"))'
            ' (("Alice Martin" NIL "alice.martin" "hopital-a.mssante.fr"))'
            ' (("Bob" NIL "bob" "cabinet-b.mssante.fr")) NIL NIL NIL'
            ' "<nested-1@hopital-a.mssante.fr>")'
        ),
        "body": (
            '((("text" "plain" ("charset" "utf-8") NIL NIL "quoted-printable" 19 0)'
            '(("text" "html" ("charset" "utf-8") NIL NIL "7bit" 37 0)'
            '("image" "png" NIL "<logo@a>" NIL "base64" 12) "related") "alternative")'
            '("application" "pdf" ("name" "compte-rendu.pdf") NIL "Compte rendu" "base64" 4)'
            ' "mixed")'
        ),
        "bodystructure": (
            '((("text" "plain" ("charset" "utf-8") NIL NIL "quoted-printable" 19 0'
            " NIL NIL NIL NIL)"
            '(("text" "html" ("charset" "utf-8") NIL NIL "7bit" 37 0 NIL NIL NIL NIL)'
            '("image" "png" NIL "<logo@a>" NIL "base64" 12 NIL'
            ' ("inline" ("filename" "logo.png")) NIL NIL)'
            ' "related" ("boundary" "rel" "type" "text/html") NIL NIL NIL)'
            ' "alternative" ("boundary" "alt") NIL NIL NIL)'
            '("application" "pdf" ("name" "compte-rendu.pdf") NIL "Compte rendu" "base64" 4'
            ' NIL ("attachment" ("filename" "compte-rendu.pdf" "size" "3")) ("fr" "en")'
            ' "http://example.org/cr.pdf")'
            ' "mixed" ("boundary" "outer") NIL NIL NIL)'
        ),
    },
    "forwarded": {
        "envelope": (
            '("Thu, 14 Mar 2024 08:00:00 +0000" "Fwd: Resultats"'
            ' (("Dr Claire Petit" NIL "claire.petit" "chu-x.mssante.fr"))'
            ' (("Dr Claire Petit" NIL "claire.petit" "chu-x.mssante.fr"))'
            ' (("Dr Claire Petit" NIL "claire.petit" "chu-x.mssante.fr"))'
            ' ((NIL NIL "secretariat" "chu-x.mssante.fr")) NIL NIL NIL'
            ' "<fwd-1@chu-x.mssante.fr>")'
        ),
        "body": (
            '(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 10 0)'
            '("message" "rfc822" NIL NIL NIL "7bit" 425'
            " (" + WA + ' "Resultats" (("Labo" NIL "labo" "labo-y.mssante.fr"))'
            ' (("Labo" NIL "labo" "labo-y.mssante.fr"))'
            ' (("Labo" NIL "labo" "labo-y.mssante.fr"))'
            ' (("Dr Claire Petit" NIL "claire.petit" "chu-x.mssante.fr")) NIL NIL NIL'
            ' "<res-42@labo-y.mssante.fr>")'
            ' (("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 17 0)'
            '("application" "pdf" ("name" "res.pdf") NIL NIL "base64" 8) "mixed")'
            " 17)"
            ' "mixed")'
        ),
        "bodystructure": (
            '(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 10 0 NIL NIL NIL NIL)'
            '("message" "rfc822" NIL NIL NIL "7bit" 425'
            " (" + WA + ' "Resultats" (("Labo" NIL "labo" "labo-y.mssante.fr"))'
            ' (("Labo" NIL "labo" "labo-y.mssante.fr"))'
            ' (("Labo" NIL "labo" "labo-y.mssante.fr"))'
            ' (("Dr Claire Petit" NIL "claire.petit" "chu-x.mssante.fr")) NIL NIL NIL'
            ' "<res-42@labo-y.mssante.fr>")'
            ' (("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 17 0 NIL NIL NIL NIL)'
            '("application" "pdf" ("name" "res.pdf") NIL NIL "base64" 8 NIL NIL NIL NIL)'
            ' "mixed" ("boundary" "inner") NIL NIL NIL)'
            ' 17 NIL ("attachment" ("filename" "resultats.eml")) NIL NIL)'
            ' "mixed" ("boundary" "fwd") NIL NIL NIL)'
        ),
    },
    # RFC 2047 encoded words stay raw in the envelope; the folded subject is unfolded.
    "encoded": {
        "envelope": (
            '("Fri, 1 Mar 2024 09:00:00 +0100"'
            ' "=?UTF-8?Q?R=C3=A9sultats_d=27analyse?= =?UTF-8?Q?_urgents?="'
            ' (("=?ISO-8859-1?Q?Andr=E9?= Pirard" NIL "PIRARD" "vm1.ulg.ac.be"))'
            ' (("=?ISO-8859-1?Q?Andr=E9?= Pirard" NIL "PIRARD" "vm1.ulg.ac.be"))'
            ' (("=?ISO-8859-1?Q?Andr=E9?= Pirard" NIL "PIRARD" "vm1.ulg.ac.be"))'
            ' (("=?UTF-8?B?w4lsb2RpZQ==?=" NIL "elodie" "cabinet.mssante.fr"))'
            ' NIL NIL NIL "<enc-1@x>")'
        ),
        "body": '("text" "plain" ("charset" "utf-8") NIL NIL "8bit" 23 1)',
        "bodystructure": '("text" "plain" ("charset" "utf-8") NIL NIL "8bit" 23 1 NIL NIL NIL NIL)',
    },
    # Raw 8-bit header text cannot be a quoted string: it becomes a literal (octet count).
    "eightbit": {
        "envelope": (
            '("Sat, 2 Mar 2024 23:30:00 -0500" {24}\r\nCompte rendu opératoire'
            ' (({14}\r\nÉlodie Durand NIL "elodie" "cabinet.mssante.fr"))'
            ' (({14}\r\nÉlodie Durand NIL "elodie" "cabinet.mssante.fr"))'
            ' (({14}\r\nÉlodie Durand NIL "elodie" "cabinet.mssante.fr"))'
            ' ((NIL NIL "bob" "x.mssante.fr")) NIL NIL NIL "<8bit@x>")'
        ),
        "body": '("text" "plain" ("charset" "utf-8") NIL NIL "8bit" 37 2)',
        "bodystructure": '("text" "plain" ("charset" "utf-8") NIL NIL "8bit" 37 2 NIL NIL NIL NIL)',
    },
    # No Date, From, Message-ID, Content-Type; an empty Subject is "" and not NIL.
    "missing": {
        "envelope": '(NIL "" NIL NIL NIL ((NIL NIL "someone" "x.mssante.fr")) NIL NIL NIL NIL)',
        "body": '("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 18 1)',
        "bodystructure": (
            '("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 18 1 NIL NIL NIL NIL)'
        ),
    },
    "groups": {
        "envelope": (
            '("Mon, 4 Mar 2024 12:00:00 +0100" "Groups"'
            ' (("Martin, Paul (Dr)" NIL "paul.martin" "chu.mssante.fr"))'
            ' (("Secretariat CHU" NIL "secretariat" "chu.mssante.fr"))'
            ' ((NIL NIL "Service" NIL)(NIL NIL "a" "chu.mssante.fr")'
            '("B. Team" NIL "b" "chu.mssante.fr")(NIL NIL NIL NIL))'
            ' ((NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL))'
            ' ((NIL "@relay1.example,@relay2.example" "route" "dest.example")'
            '("Jean \\"JJ\\" Dupont" NIL "jean" "x.example"))'
            ' ((NIL NIL "local-only" "MISSING_DOMAIN"))'
            ' "<orig@chu.mssante.fr>" "<groups@chu.mssante.fr>")'
        ),
        "body": '("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 6 1)',
        "bodystructure": (
            '("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 6 1 NIL NIL NIL NIL)'
        ),
    },
    "xdm": {
        "envelope": (
            '("Tue, 12 Mar 2024 14:05:09 +0100" "CR consultation"'
            ' (("DPI Hopital" NIL "dpi" "hopital-a.mssante.fr"))'
            ' (("DPI Hopital" NIL "dpi" "hopital-a.mssante.fr"))'
            ' (("DPI Hopital" NIL "dpi" "hopital-a.mssante.fr"))'
            ' (("Dr Martin" NIL "paul.martin" "chu.mssante.fr")) NIL NIL NIL'
            ' "<xdm-1@hopital-a.mssante.fr>")'
        ),
        "body": (
            '(("text" "plain" ("charset" "UTF-8") NIL NIL "7bit" 42 0)'
            '("application" "zip" ("name" "IHE_XDM.ZIP") NIL NIL "base64" 32) "mixed")'
        ),
        "bodystructure": (
            '(("text" "plain" ("charset" "UTF-8") NIL NIL "7bit" 42 0 NIL NIL NIL NIL)'
            '("application" "zip" ("name" "IHE_XDM.ZIP") NIL NIL "base64" 32 NIL'
            ' ("attachment" ("filename" "IHE_XDM.ZIP")) NIL NIL)'
            ' "mixed" ("boundary" "----=_Part_0_1") NIL NIL NIL)'
        ),
    },
    # RFC 2231 sections are passed as they appear; comments in parameters are dropped.
    "rfc2231": {
        "envelope": (
            '("Fri, 15 Mar 2024 16:45:00 +0100" "RFC 2231"'
            ' ((NIL NIL "a" "x.mssante.fr")) ((NIL NIL "a" "x.mssante.fr"))'
            ' ((NIL NIL "a" "x.mssante.fr")) ((NIL NIL "b" "y.mssante.fr")) NIL NIL NIL'
            ' "<2231@x>")'
        ),
        "body": (
            '(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 16 0)'
            '("application" "pdf" ("name*0*" "UTF-8\'\'compte%20rendu%20"'
            ' "name*1*" "op%C3%A9ratoire.pdf") NIL NIL "base64" 12)'
            '("application" "octet-stream" NIL NIL NIL "quoted-printable" 9) "mixed")'
        ),
        "bodystructure": (
            '(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 16 0 NIL NIL NIL NIL)'
            '("application" "pdf" ("name*0*" "UTF-8\'\'compte%20rendu%20"'
            ' "name*1*" "op%C3%A9ratoire.pdf") NIL NIL "base64" 12 NIL'
            ' ("attachment" ("filename*0*" "UTF-8\'fr\'compte%20rendu%20"'
            ' "filename*1*" "op%C3%A9ratoire.pdf")) NIL NIL)'
            '("application" "octet-stream" NIL NIL NIL "quoted-printable" 9 NIL'
            ' ("attachment" ("filename" "=?UTF-8?B?w6l0w6kudHh0?=")) NIL NIL)'
            ' "mixed" ("boundary" "b2231") NIL NIL NIL)'
        ),
    },
}


def load(name: str) -> bytes:
    return (CORPUS / f"{name}.eml").read_bytes()


def test_corpus_is_stored_with_crlf() -> None:
    for path in CORPUS.glob("*.eml"):
        data = path.read_bytes()
        assert data.count(b"\n") == data.count(b"\r\n"), path.name


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("item", ["envelope", "body", "bodystructure"])
def test_corpus_views(name: str, item: str) -> None:
    view = build_view(load(name))
    assert getattr(view, item) == EXPECTED[name][item]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_view_survives_json(name: str) -> None:
    view = build_view(load(name))
    again = MessageView.from_json(view.to_json())
    assert again == view


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bare_lf_input_gives_the_same_structure_shape(name: str) -> None:
    """Bare LF is tolerated: same envelope, and sizes shrink by exactly the removed CRs."""
    crlf = load(name)
    lf = crlf.replace(b"\r\n", b"\n")
    view = build_view(lf)
    assert view.envelope == EXPECTED[name]["envelope"]
    assert view.size == len(lf)
    assert set(view.parts) == set(build_view(crlf).parts)


def test_eightbit_literal_counts_octets_on_the_wire() -> None:
    envelope = wire_bytes(build_view(load("eightbit")).envelope)
    assert b"{24}\r\nCompte rendu op\xc3\xa9ratoire " in envelope
    assert len("Compte rendu opératoire".encode()) == 24


def test_search_fields_decoded() -> None:
    search = build_view(load("encoded")).search
    assert search.subject == "Résultats d'analyse urgents"
    assert search.from_ == "André Pirard <PIRARD@vm1.ulg.ac.be>"
    assert search.to == "Élodie <elodie@cabinet.mssante.fr>"
    assert search.message_id == "<enc-1@x>"
    assert search.date == int(datetime(2024, 3, 1, 8, 0, tzinfo=UTC).timestamp())
    assert search.sent_date == "2024-03-01"


def test_search_sent_date_disregards_timezone() -> None:
    """RFC 3501 §6.4.4 SENTON uses the date as written: 2 March here, 3 March in UTC."""
    search = build_view(load("eightbit")).search
    assert search.date == int(datetime(2024, 3, 3, 4, 30, tzinfo=UTC).timestamp())
    assert search.sent_date == "2024-03-02"
    assert search.subject == "Compte rendu opératoire"
    assert search.from_ == "Élodie Durand <elodie@cabinet.mssante.fr>"


def test_search_fields_of_missing_headers() -> None:
    raw = load("missing")
    search = build_view(raw).search
    assert (search.subject, search.from_, search.date, search.sent_date, search.message_id) == (
        "",
        None,
        None,
        None,
        None,
    )
    assert search.header_size == raw.index(b"\r\n\r\n") + 4
    assert search.attachments == ()


def test_search_groups_keep_group_names() -> None:
    """RFC 3501 §6.4.4: SEARCH TO matches the group's display name too (RFC 5322 §3.4)."""
    search = build_view(load("groups")).search
    assert search.to == "undisclosed-recipients:;"
    assert search.cc == 'route@dest.example, Jean "JJ" Dupont <jean@x.example>'


def test_attachments_xdm() -> None:
    view = build_view(load("xdm"))
    # base64 of the 22-octet empty ZIP archive (end of central directory only).
    assert view.search.attachments == (Attachment("2", "IHE_XDM.ZIP", "application/zip", 22),)


def test_attachments_rfc2231_and_rfc2047_filenames() -> None:
    view = build_view(load("rfc2231"))
    assert view.search.attachments == (
        Attachment("2", "compte rendu opératoire.pdf", "application/pdf", 9),
        Attachment("3", "été.txt", "application/octet-stream", 5),
    )


def test_attachments_nested_and_forwarded() -> None:
    nested = build_view(load("nested")).search.attachments
    assert nested == (
        Attachment("1.2.2", "logo.png", "image/png", 8),
        Attachment("2", "compte-rendu.pdf", "application/pdf", 3),
    )
    forwarded = build_view(load("forwarded")).search.attachments
    assert forwarded == (
        Attachment("2", "resultats.eml", "message/rfc822", 425),
        Attachment("2.2", "res.pdf", "application/pdf", 4),
    )


def _as_imaplib_lines(data: bytes) -> list[bytes | tuple[bytes, bytes]]:
    """Wire bytes split the way imaplib hands a response with literals to a client."""
    items: list[bytes | tuple[bytes, bytes]] = []
    pos = 0
    for m in re.finditer(rb"\{(\d+)\}\r\n", data):
        if m.start() < pos:
            continue
        size = int(m.group(1))
        items.append((data[pos : m.start()] + m.group(0)[:-2], data[m.end() : m.end() + size]))
        pos = m.end() + size
    items.append(data[pos:])
    return items


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_views_parse_in_a_real_imap_client(name: str) -> None:
    """IMAPClient's FETCH response parser reads our ENVELOPE and BODYSTRUCTURE."""
    view = build_view(load(name))
    wire = wire_bytes(
        f"7 (ENVELOPE {view.envelope} BODY {view.body} BODYSTRUCTURE {view.bodystructure})"
    )
    parsed = parse_fetch_response(_as_imaplib_lines(wire))[7]
    envelope = parsed[b"ENVELOPE"]
    if name == "eightbit":
        assert envelope.subject == "Compte rendu opératoire".encode()
        assert envelope.from_[0].name == "Élodie Durand".encode()
    if name == "forwarded":
        structure = parsed[b"BODYSTRUCTURE"]
        assert structure.is_multipart
        assert structure[1] == b"mixed"
        assert structure[0][1][:2] == (b"message", b"rfc822")
    assert parsed[b"BODY"] is not None
