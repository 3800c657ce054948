"""Parsers of the extension commands in :mod:`imap.protocol.ext_commands`.

:data:`EXT_COMMANDS` is merged into the parser's command table; each function reads the
arguments after the command name from the :class:`~imap.protocol.tokens.Cursor`.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable

from imap.protocol import ext_commands as x
from imap.protocol.commands import Command
from imap.protocol.tokens import Cursor

__all__ = ["EXT_COMMANDS", "EXT_UID_COMMANDS", "catenate"]

MAX_CAT_PARTS = 256
"""Parts of one CATENATE at most (each is a literal or a URL read from a mailbox)."""


def _compress(cur: Cursor, tag: str, uid: bool) -> Command:
    # RFC 4978 §5: compress = "COMPRESS" SP algorithm ; algorithm = "DEFLATE"
    cur.sp()
    mechanism = cur.atom("compression mechanism").upper()
    if mechanism != "DEFLATE":
        cur.fail(f"unknown compression mechanism {mechanism[:20]}; DEFLATE is the only one")
    return x.Compress(tag, mechanism)


def catenate(cur: Cursor, flags: tuple[str, ...], date: datetime.datetime | None
             ) -> x.CatenateMessage:
    """RFC 4469 §5: ``"CATENATE" SP "(" cat-part *(SP cat-part) ")"``, the cursor on
    ``CATENATE``; ``cat-part = "TEXT" SP literal / "URL" SP astring``."""
    cur.pos += len("CATENATE")
    cur.sp()
    cur.expect(b"(")
    parts: list[x.CatPart] = []
    while True:
        kind = cur.keyword("TEXT or URL")
        cur.sp()
        if kind == "TEXT":
            lit = cur.message_literal(allow8=True)  # RFC 3516 §4.4 allows literal8 here
            if lit is None:
                cur.fail("CATENATE TEXT expects a literal")
            parts.append(x.CatPart(text=lit[0]))
        elif kind == "URL":
            parts.append(x.CatPart(url=cur.astring_text("IMAP URL")))
        else:
            cur.fail("a CATENATE part is TEXT literal or URL url")
        if len(parts) > MAX_CAT_PARTS:
            cur.fail(f"CATENATE takes at most {MAX_CAT_PARTS} parts")
        if cur.accept(b")"):
            break
        cur.sp()
    return x.CatenateMessage(flags, date, b"", False, tuple(parts))


def _replace(cur: Cursor, tag: str, uid: bool) -> Command:
    # RFC 8508 §6: replace = "REPLACE" SP seq-number SP mailbox SP append-message
    from imap.protocol.parser import parse_append_tail

    cur.sp()
    number = cur.nz_number("message number" if not uid else "UID")
    append = parse_append_tail(cur, tag)
    if len(append.messages) != 1:
        cur.fail("REPLACE takes one message")
    return x.Replace(tag, uid, number, append.mailbox, append.messages[0])


_FILTERS = ("SELECTED", "SELECTED-DELAYED", "INBOXES", "PERSONAL", "SUBSCRIBED", "SUBTREE",
            "MAILBOXES")
_EVENTS = {e.upper(): e for e in (
    "MessageNew", "MessageExpunge", "FlagChange", "AnnotationChange", "MailboxName",
    "SubscriptionChange", "MailboxMetadataChange", "ServerMetadataChange")}


def _notify(cur: Cursor, tag: str, uid: bool) -> Command:
    # RFC 5465 §8: notify = "NOTIFY" SP (notify-set / notify-none)
    cur.sp()
    word = cur.keyword("SET or NONE")
    if word == "NONE":
        return x.Notify(tag, None)
    if word != "SET":
        cur.fail("NOTIFY takes SET or NONE")
    cur.sp()
    status = False
    if cur.data[cur.pos:cur.pos + 8].upper() == b"(STATUS)":
        cur.pos += 8
        status = True
        cur.sp()
    groups = [_event_group(cur)]
    while cur.maybe_sp():
        groups.append(_event_group(cur))
        if len(groups) > 16:
            cur.fail("NOTIFY takes at most 16 event groups")
    return x.Notify(tag, tuple(groups), status)


def _event_group(cur: Cursor) -> x.EventGroup:
    # event-group = "(" filter-mailboxes SP events ")"
    cur.expect(b"(")
    name = cur.keyword("filter-mailboxes")
    if name not in _FILTERS:
        cur.fail(f"unknown mailbox filter {name[:20]}")
    mailboxes: list[str] = []
    if name in ("SUBTREE", "MAILBOXES"):
        # one-or-more-mailbox = mailbox / "(" mailbox *(SP mailbox) ")"
        cur.sp()
        if cur.accept(b"("):
            mailboxes.append(cur.mailbox())
            while cur.maybe_sp():
                mailboxes.append(cur.mailbox())
            cur.expect(b")")
        else:
            mailboxes.append(cur.mailbox())
    cur.sp()
    events: list[str] = []
    fetch_atts: list[str] = []
    if not cur.accept(b"("):
        if cur.keyword("events") != "NONE":
            cur.fail("events are a parenthesised list or NONE")
    else:
        while True:
            word = cur.keyword("event")
            event = _EVENTS.get(word)
            if event is None:
                cur.fail(f"unknown event {word[:30]}")
            events.append(event)
            if event == "MessageNew" and cur.data[cur.pos:cur.pos + 2] == b" (":
                cur.pos += 2
                while True:
                    fetch_atts.append(cur.keyword("FETCH attribute"))
                    if cur.accept(b")"):
                        break
                    cur.sp()
            if cur.accept(b")"):
                break
            cur.sp()
    cur.expect(b")")
    return x.EventGroup(name, tuple(mailboxes), tuple(events), tuple(fetch_atts))


# RFC 5464 §3.2.1: "/private" or "/shared", then "/"-separated components of printable
# ASCII without "*", "%" (list wildcards) or "/"; no empty component, no trailing "/".
_ENTRY = re.compile(r"/(?:private|shared)(?:/[\x21-\x24\x26-\x29\x2b-\x2e\x30-\x7e]+)+",
                    re.IGNORECASE)
MAX_METADATA_ENTRIES = 1000
"""Entries one GETMETADATA or SETMETADATA may name (a parsing bound)."""


def _metadata_mailbox(cur: Cursor) -> str | None:
    raw = cur.astring("mailbox name")
    return None if raw == b"" else cur.decode_mailbox(raw)


def _entry(cur: Cursor) -> str:
    name = cur.text(cur.astring("entry name"), "entry name")
    if not _ENTRY.fullmatch(name):
        cur.fail(f"invalid entry name {name[:60]!r}: /private/... or /shared/...")
    return name.lower()


def _getmetadata(cur: Cursor, tag: str, uid: bool) -> Command:
    # RFC 5464 §5: getmetadata = "GETMETADATA" [SP getmetadata-options] SP mailbox SP entries
    cur.sp()
    maxsize: int | None = None
    depth: int | None = 0
    if cur.accept(b"("):
        while True:
            option = cur.keyword("GETMETADATA option")
            cur.sp()
            if option == "MAXSIZE":
                maxsize = cur.number(what="MAXSIZE")
            elif option == "DEPTH":
                value = cur.keyword("DEPTH")
                if value not in ("0", "1", "INFINITY"):
                    cur.fail("DEPTH is 0, 1 or infinity")
                depth = None if value == "INFINITY" else int(value)
            else:
                cur.fail(f"unknown GETMETADATA option {option[:20]}")
            if cur.accept(b")"):
                break
            cur.sp()
        cur.sp()
    mailbox = _metadata_mailbox(cur)
    cur.sp()
    entries = []
    if cur.accept(b"("):
        entries.append(_entry(cur))
        while cur.maybe_sp():
            entries.append(_entry(cur))
            if len(entries) > MAX_METADATA_ENTRIES:
                cur.fail("too many entries")
        cur.expect(b")")
    else:
        entries.append(_entry(cur))
    return x.GetMetadata(tag, mailbox, tuple(dict.fromkeys(entries)), maxsize, depth)


def _setmetadata(cur: Cursor, tag: str, uid: bool) -> Command:
    # setmetadata = "SETMETADATA" SP mailbox SP "(" entry-value *(SP entry-value) ")"
    # entry-value = entry SP value ; value = nstring / literal8
    cur.sp()
    mailbox = _metadata_mailbox(cur)
    cur.sp()
    cur.expect(b"(")
    values: dict[str, bytes | None] = {}
    while True:
        name = _entry(cur)
        cur.sp()
        if cur.peek() == 0x7E:  # "~": literal8
            lit = cur.literal(allow8=True)
            if lit is None:
                cur.fail("expected a value")
            values[name] = lit[0]
        else:
            values[name] = cur.nstring("value")
        if len(values) > MAX_METADATA_ENTRIES:
            cur.fail("too many entries")
        if cur.accept(b")"):
            break
        cur.sp()
    return x.SetMetadata(tag, mailbox, tuple(values.items()))


EXT_COMMANDS: dict[str, Callable[[Cursor, str, bool], Command]] = {
    "GETMETADATA": _getmetadata,
    "SETMETADATA": _setmetadata,
    "COMPRESS": _compress,
    "NOTIFY": _notify,
    "REPLACE": _replace,
}
EXT_UID_COMMANDS = ("REPLACE",)
"""Extension commands that also have a ``UID`` form."""
