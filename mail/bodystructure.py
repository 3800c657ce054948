"""BODY and BODYSTRUCTURE rendered once at delivery (RFC 3501 §7.4.2, RFC 9051 §7.5.2).

Conventions (RFC 3501 leaves them open; these match what Dovecot shows to clients):

- Case: media type, subtype, transfer encoding, disposition type and parameter values are kept
  as written in the message. MIME says they are case-insensitive (RFC 2045 §5.1), so clients
  compare them that way, and keeping them is faithful to the message. Parameter *names* are
  lowercased (also case-insensitive) so that a client finds ``charset`` or ``name`` directly.
  Defaults the server supplies are lowercase: ``"text" "plain"``, ``"7bit"``.
- Default charset: a text part without a charset parameter gets ``("charset" "us-ascii")``,
  the default RFC 2046 §4.1.2 assigns to every text subtype; a part without Content-Type is
  ``"text" "plain" ("charset" "us-ascii")`` (RFC 2045 §5.2).
- RFC 2231 parameters are passed as they appear (``"filename*0*" "UTF-8''%C3%A9"``…): the
  structure is a projection of the message, and clients that understand RFC 2231 decode them.
  The decoded file name is in the search fields (:mod:`mail.views`).
- Size is in octets as stored (CRLF); lines are the CRLF-terminated lines of the part as
  RFC 2046 §5.1.1 delimits it (see :func:`mail.mime.count_lines`).
- A message/rfc822 (or message/global) part under base64 or quoted-printable, which RFC 2046
  §5.2.1 forbids, has no envelope, body and lines as stored: it is shown as the basic body
  ``"application" "octet-stream"`` with its encoding (BINARY[n] decodes it), never as a
  ``"message" "rfc822"`` without the fields RFC 3501 §9 body-type-msg requires.
- message/global has the message/rfc822 shape only once UTF-8 is enabled (RFC 9051 §7.5.2,
  RFC 6855): :func:`basic_global` turns it into a basic body for IMAP4rev1 sessions.
- Extension data is always complete: ``md5`` (the Content-MD5 value, RFC 1864, else ``NIL``),
  disposition with parameters (RFC 2183), language list (RFC 3282), location (RFC 2557).
"""

from __future__ import annotations

from mail.envelope import render_envelope
from mail.imapstring import nstring, param_list, string_list
from mail.mime import Entity
from mail.mimeheader import parse_disposition, parse_language, parse_token_value


def _params(ent: Entity) -> list[tuple[str, str]]:
    params = list(ent.params)
    # RFC 2046 §4.1.2: "The default character set ... is US-ASCII."
    if ent.mtype.lower() == "text" and not any(k == "charset" for k, _ in params):
        params.append(("charset", "us-ascii"))
    return params


def _extension(ent: Entity, single: bool) -> str:
    h = ent.header
    disposition = parse_disposition(h.get("content-disposition"))
    dsp = (
        "NIL"
        if disposition is None
        else "(" + nstring(disposition[0]) + " " + param_list(disposition[1]) + ")"
    )
    languages = parse_language(h.get("content-language"))
    lang = "NIL" if languages is None else string_list(languages)
    loc = nstring(h.get("content-location"))
    if single:
        # RFC 3501 §9 body-ext-1part: md5 dsp lang loc
        return " ".join((nstring(h.get("content-md5")), dsp, lang, loc))
    # RFC 3501 §9 body-ext-mpart: param dsp lang loc
    return " ".join((param_list(ent.params), dsp, lang, loc))


def render_body(ent: Entity, extended: bool) -> str:
    """BODYSTRUCTURE (``extended``) or BODY of the entity, as one parenthesised item."""
    kind = ent.kind
    if kind == "multipart":
        # RFC 3501 §9 body-type-mpart = 1*body SP media-subtype [SP body-ext-mpart]
        inner = "".join(render_body(c, extended) for c in ent.children)
        out = inner + " " + nstring(ent.subtype)
        if extended:
            out += " " + _extension(ent, single=False)
        return "(" + out + ")"
    h = ent.header
    encoding = parse_token_value(h.get("content-transfer-encoding")) or "7bit"
    size = ent.body_end - ent.body_start
    mtype, subtype = ent.mtype, ent.subtype
    if ent.message is None and mtype.lower() == "message" and \
            subtype.lower() in ("rfc822", "global"):
        # Encoded (RFC 2046 §5.2.1 forbids it) or past the nesting limit: no envelope,
        # body and lines to give, so not the body-type-msg shape (RFC 3501 §9).
        mtype, subtype = "application", "octet-stream"
    # RFC 3501 §9 body-fields = param id desc enc octets
    fields = [
        nstring(mtype),
        nstring(subtype),
        param_list(_params(ent)),
        nstring(h.get("content-id")),
        nstring(h.get("content-description")),
        nstring(encoding),
        str(size),
    ]
    if kind == "message":
        # RFC 3501 §9 body-type-msg: body-fields SP envelope SP body SP body-fld-lines
        assert ent.message is not None
        fields.append(render_envelope(ent.message.header))
        fields.append(render_body(ent.message.body, extended))
        fields.append(str(ent.lines))
    elif kind == "text":
        # RFC 3501 §9 body-type-text: body-fields SP body-fld-lines
        fields.append(str(ent.lines))
    if extended:
        fields.append(_extension(ent, single=True))
    return "(" + " ".join(fields) + ")"


def render_structures(body: Entity) -> tuple[str, str]:
    """``(BODY, BODYSTRUCTURE)`` of a message whose body entity is ``body``."""
    return render_body(body, extended=False), render_body(body, extended=True)


def basic_global(structure: bytes) -> bytes:
    """``structure`` with every message/global part in the basic shape (RFC 3501 §9:
    ``media-message`` is ``"MESSAGE" "RFC822"`` only), for sessions without UTF-8: the
    envelope, body and lines that follow its body fields are dropped, its extension data
    stays."""
    if b'"global"' not in structure.lower():
        return structure
    cuts: list[tuple[int, int]] = []
    _scan(structure, 0, cuts)
    out = structure
    # A message/global inside another one goes with the outer envelope-body-lines cut.
    cuts = [c for c in cuts if not any(o[0] <= c[0] and c[1] <= o[1] and o != c for o in cuts)]
    for start, stop in sorted(cuts, reverse=True):
        out = out[:start] + out[stop:]
    return out


def _scan(data: bytes, pos: int, cuts: list[tuple[int, int]]) -> int:
    """Reads the list at ``data[pos] == "("``; records the span to cut out of each
    message/global part; returns the offset after the list."""
    assert data[pos:pos + 1] == b"("
    pos += 1
    items: list[tuple[int, int, bytes]] = []  # (start, end, value of a string) per child
    while pos < len(data) and data[pos:pos + 1] != b")":
        if data[pos:pos + 1] == b" ":
            pos += 1
            continue
        start = pos
        value = b""
        if data[pos:pos + 1] == b"(":
            pos = _scan(data, pos, cuts)
        elif data[pos:pos + 1] == b'"':
            pos += 1
            while data[pos:pos + 1] != b'"':
                pos += 2 if data[pos:pos + 1] == b"\\" else 1
            pos += 1
            value = data[start + 1:pos - 1]
        elif data[pos:pos + 1] == b"{":
            close = data.index(b"}", pos)
            size = int(data[pos + 1:close].rstrip(b"+"))
            pos = close + 3 + size
            value = data[close + 3:pos]
        else:
            while pos < len(data) and data[pos:pos + 1] not in (b" ", b")", b"("):
                pos += 1
        items.append((start, pos, value))
    if (len(items) >= 10 and items[0][2].lower() == b"message"
            and items[1][2].lower() == b"global"):
        # body-fields are items 2..6; envelope, body, lines are 7..9.
        cuts.append((items[6][1], items[9][1]))
    return pos + 1
