"""IMAP command parser: bytes of one command (from the reader) to a typed command.

Covers IMAP4rev1 (RFC 3501) and IMAP4rev2 (RFC 9051) with the extensions the
server announces (see the module docstrings of ``commands``). The grammar
references are RFC 9051 §9 unless stated otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from imap.protocol import commands as c
from imap.protocol import contexts, sort_thread
from imap.protocol.errors import BadCharset, ParseError
from imap.protocol.ext_parser import EXT_COMMANDS, EXT_UID_COMMANDS, catenate
from imap.protocol.fetch_items import FetchAttr, Section
from imap.protocol.search_keys import (
    SearchAge,
    SearchAll,
    SearchAnd,
    SearchDate,
    SearchFlag,
    SearchHeader,
    SearchKey,
    SearchModseq,
    SearchNot,
    SearchObjectId,
    SearchOr,
    SearchSaveDate,
    SearchSequence,
    SearchSize,
    SearchText,
)
from imap.protocol.spool import SpooledLiteral
from imap.protocol.tokens import Cursor

__all__ = ["parse_command", "read_tag"]

_TAG = re.compile(rb"[\x21\x23\x24\x26\x27\x2c-\x5b\x5d-\x7a\x7c-\x7e]+")
_BASE64 = re.compile(rb"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")
_FETCH_NAME = re.compile(rb"[A-Za-z0-9.]+")
_PART = re.compile(rb"[1-9][0-9]{0,8}(?:\.[1-9][0-9]{0,8})*")
_MAX_DEPTH = 40
_OBJECTID = re.compile(r"[A-Za-z0-9_-]{1,255}")  # RFC 8474 §7 objectid

# RFC 9051 §6.4.5 macros (RFC 3501 §6.4.5 for FULL's BODY).
_MACROS = {
    "ALL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"),
    "FAST": ("FLAGS", "INTERNALDATE", "RFC822.SIZE"),
    "FULL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"),
}
_SIMPLE_FETCH = frozenset(
    {
        "ENVELOPE",
        "FLAGS",
        "INTERNALDATE",
        "RFC822",
        "RFC822.HEADER",
        "RFC822.SIZE",
        "RFC822.TEXT",
        "BODY",
        "BODYSTRUCTURE",
        "UID",
        "MODSEQ",  # RFC 7162 §3.1.4.1
        "SAVEDATE",  # RFC 8514
        "EMAILID",  # RFC 8474
        "THREADID",
        "PREVIEW",  # RFC 8970
    }
)
_STATUS_ITEMS = frozenset(
    {
        "MESSAGES",
        "RECENT",
        "UIDNEXT",
        "UIDVALIDITY",
        "UNSEEN",
        "DELETED",  # RFC 9051 §6.3.11
        "SIZE",  # RFC 8438
        "HIGHESTMODSEQ",  # RFC 7162 §3.1.2.1
        "APPENDLIMIT",  # RFC 7889
        "MAILBOXID",  # RFC 8474
    }
)
_LIST_SELECT = frozenset({"SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"})
_LIST_RETURN = frozenset({"SUBSCRIBED", "CHILDREN", "SPECIAL-USE", "STATUS",
                          "MYRIGHTS"})  # RFC 8440
_CHARSETS = frozenset({"UTF-8", "US-ASCII"})
_SEARCH_FLAGS = {
    "ANSWERED": ("\\Answered", True),
    "DELETED": ("\\Deleted", True),
    "DRAFT": ("\\Draft", True),
    "FLAGGED": ("\\Flagged", True),
    "RECENT": ("\\Recent", True),
    "SEEN": ("\\Seen", True),
    "UNANSWERED": ("\\Answered", False),
    "UNDELETED": ("\\Deleted", False),
    "UNDRAFT": ("\\Draft", False),
    "UNFLAGGED": ("\\Flagged", False),
    "UNSEEN": ("\\Seen", False),
    "OLD": ("\\Recent", False),
}
_SEARCH_HEADERS = {"FROM": "From", "TO": "To", "CC": "Cc", "BCC": "Bcc", "SUBJECT": "Subject"}
_SEARCH_DATES = {
    "BEFORE": ("before", False),
    "ON": ("on", False),
    "SINCE": ("since", False),
    "SENTBEFORE": ("before", True),
    "SENTON": ("on", True),
    "SENTSINCE": ("since", True),
}


def read_tag(data: bytes) -> str | None:
    """The tag of a command line when it is syntactically valid, else None."""
    m = _TAG.match(data)
    return m.group().decode("ascii") if m else None


def parse_command(
    data: bytes, *, utf8: bool = False, spooled: Mapping[int, SpooledLiteral] | None = None
) -> c.Command:
    """Parse one command as returned by ``CommandReader.read_command``.

    ``utf8`` is true under IMAP4rev2 or UTF8=ACCEPT (mailbox names in UTF-8).
    ``spooled`` is the reader's :attr:`~imap.protocol.reader.CommandReader.spooled`: APPEND
    messages it kept in encrypted files rather than in ``data``.
    Raises :class:`ParseError` (or its subclass :class:`BadCharset`) only.
    """
    cur = Cursor(data, utf8, spooled)
    tag = read_tag(data)
    if tag is None:
        raise ParseError("missing or invalid tag")
    cur.pos = len(tag)
    cur.tag = tag
    cur.sp()
    name = cur.keyword("command name")
    uid = False
    if name == "UID":
        cur.sp()
        uid = True
        name = cur.keyword("command name after UID")
        handler = _UID_COMMANDS.get(name)
        if handler is None:
            cur.fail(f"UID {name[:20]} is not a UID command")
    else:
        handler = _COMMANDS.get(name)
        if handler is None:
            cur.fail(f"unknown command {name[:20]}")
    command = handler(cur, tag, uid)
    cur.end()
    return command


# --- commands without arguments ------------------------------------------------


def _bare(cls: type[c.Command]) -> Callable[[Cursor, str, bool], c.Command]:
    def parse(cur: Cursor, tag: str, uid: bool) -> c.Command:
        return cls(tag)

    return parse


# --- any state / not authenticated ---------------------------------------------


def _authenticate(cur: Cursor, tag: str, uid: bool) -> c.Command:
    cur.sp()
    mechanism = cur.keyword("SASL mechanism")
    initial: str | None = None
    if cur.maybe_sp():
        # RFC 4959 §3: initial response, "=" stands for an empty one.
        if cur.accept(b"="):
            initial = ""
        else:
            m = _BASE64.match(cur.data, cur.pos)
            if not m or not m.group():
                cur.fail("initial response must be base64 or '='")
            cur.pos = m.end()
            initial = m.group().decode("ascii")
    return c.Authenticate(tag, mechanism, initial)


def _login(cur: Cursor, tag: str, uid: bool) -> c.Command:
    cur.sp()
    user = cur.astring_text("user name")
    cur.sp()
    password = cur.astring_text("password")
    return c.Login(tag, user, password)


def _id(cur: Cursor, tag: str, uid: bool) -> c.Command:
    # RFC 2971 §4: id_params_list ::= "(" #(string SPACE nstring) ")" / nil
    cur.sp()
    if cur.data[cur.pos : cur.pos + 3].upper() == b"NIL":
        cur.pos += 3
        return c.Id(tag, None)
    cur.expect(b"(")
    params: list[tuple[str, str | None]] = []
    if not cur.accept(b")"):
        while True:
            key = cur.text(cur.string("ID field name"), "ID field name")
            cur.sp()
            raw = cur.nstring("ID field value")
            params.append((key, None if raw is None else cur.text(raw, "ID field value")))
            if len(params) > 30:
                cur.fail("ID accepts at most 30 field-value pairs")  # RFC 2971 §3.3
            if cur.accept(b")"):
                break
            cur.sp()
    return c.Id(tag, tuple(params))


def _enable(cur: Cursor, tag: str, uid: bool) -> c.Command:
    # RFC 5161 §3.1: ENABLE 1*(SP capability)
    caps = []
    cur.sp()
    caps.append(cur.keyword("capability"))
    while cur.maybe_sp():
        caps.append(cur.keyword("capability"))
    return c.Enable(tag, tuple(caps))


# --- authenticated -------------------------------------------------------------


def _select(readonly: bool) -> Callable[[Cursor, str, bool], c.Command]:
    def parse(cur: Cursor, tag: str, uid: bool) -> c.Command:
        cur.sp()
        mailbox = cur.mailbox()
        condstore = False
        qresync: c.QResync | None = None
        if cur.maybe_sp():
            # RFC 4466 §2.1 select-params; RFC 7162 §3.1.8 CONDSTORE, §3.2.5 QRESYNC
            cur.expect(b"(")
            while True:
                param = cur.keyword("SELECT parameter")
                if param == "CONDSTORE":
                    condstore = True
                elif param == "QRESYNC":
                    cur.sp()
                    qresync = _qresync(cur)
                else:
                    cur.fail(f"unknown SELECT parameter {param[:20]}")
                if cur.accept(b")"):
                    break
                cur.sp()
        return c.Select(tag, mailbox, readonly, condstore, qresync)

    return parse


def _qresync(cur: Cursor) -> c.QResync:
    cur.expect(b"(")
    uidvalidity = cur.nz_number("UIDVALIDITY")
    cur.sp()
    modseq = cur.number64("mod-sequence")
    known = None
    match = None
    if cur.maybe_sp():
        if cur.peek() != 0x28:
            known = cur.sequence_set()
            if known.has_star or known.saved:
                cur.fail("known-uids must not contain '*' or '$'")
        if known is None or cur.maybe_sp():
            cur.expect(b"(")
            seqs = cur.sequence_set()
            cur.sp()
            uids = cur.sequence_set()
            cur.expect(b")")
            match = (seqs, uids)
    cur.expect(b")")
    return c.QResync(uidvalidity, modseq, known, match)


def _create(cur: Cursor, tag: str, uid: bool) -> c.Command:
    cur.sp()
    mailbox = cur.mailbox()
    uses: tuple[str, ...] = ()
    if cur.maybe_sp():
        # RFC 6154 §3: create-param = "USE" SP "(" [use-attr *(SP use-attr)] ")"
        cur.expect(b"(")
        word = cur.keyword("CREATE parameter")
        if word != "USE":
            cur.fail(f"unknown CREATE parameter {word[:20]}")
        cur.sp()
        cur.expect(b"(")
        attrs: list[str] = []
        if not cur.accept(b")"):
            while True:
                cur.expect(b"\\")
                attrs.append("\\" + cur.atom("special-use attribute").capitalize())
                if cur.accept(b")"):
                    break
                cur.sp()
        cur.expect(b")")
        uses = tuple(attrs)
    return c.Create(tag, mailbox, uses)


def _one_mailbox(cls: type[c.Command]) -> Callable[[Cursor, str, bool], c.Command]:
    def parse(cur: Cursor, tag: str, uid: bool) -> c.Command:
        cur.sp()
        return cls(tag, cur.mailbox())  # type: ignore[call-arg]

    return parse


def _mailbox_and_id(cls: type[c.Command]) -> Callable[[Cursor, str, bool], c.Command]:
    def parse(cur: Cursor, tag: str, uid: bool) -> c.Command:
        cur.sp()
        mailbox = cur.mailbox()
        cur.sp()
        return cls(tag, mailbox, cur.astring_text("identifier"))  # type: ignore[call-arg]

    return parse


def _rename(cur: Cursor, tag: str, uid: bool) -> c.Command:
    cur.sp()
    old = cur.mailbox()
    cur.sp()
    return c.Rename(tag, old, cur.mailbox())


def _paren_keywords(cur: Cursor, what: str) -> list[str]:
    cur.expect(b"(")
    words: list[str] = []
    if not cur.accept(b")"):
        while True:
            words.append(cur.keyword(what))
            if cur.accept(b")"):
                break
            cur.sp()
    return words


def _status_items(cur: Cursor, allow_empty: bool = False) -> tuple[str, ...]:
    items = _paren_keywords(cur, "STATUS item")
    if not items and not allow_empty:
        cur.fail("STATUS needs at least one item")
    for item in items:
        if item not in _STATUS_ITEMS:
            cur.fail(f"unknown STATUS item {item[:20]}")
    return tuple(dict.fromkeys(items))


def _list(cur: Cursor, tag: str, uid: bool) -> c.Command:
    # RFC 5258 §6: list = "LIST" [SP list-select-opts] SP mailbox SP mbox-or-pat
    #                     [SP list-return-opts]
    cur.sp()
    extended = False
    selection: set[str] = set()
    if cur.peek() == 0x28:
        extended = True
        for opt in _paren_keywords(cur, "LIST selection option"):
            if opt not in _LIST_SELECT:
                cur.fail(f"unknown LIST selection option {opt[:20]}")
            selection.add(opt)
        # RFC 5258 §3.1: RECURSIVEMATCH needs another selection option.
        if "RECURSIVEMATCH" in selection and not selection - {"RECURSIVEMATCH", "REMOTE"}:
            cur.fail("RECURSIVEMATCH must be combined with another selection option")
        cur.sp()
    reference = cur.decode_mailbox(cur.astring("reference name"), inbox=False)
    cur.sp()
    patterns: list[str] = []
    if cur.peek() == 0x28:
        extended = True
        cur.pos += 1
        patterns.append(cur.list_mailbox())
        while cur.maybe_sp():
            patterns.append(cur.list_mailbox())
        cur.expect(b")")
    else:
        patterns.append(cur.list_mailbox())
    returns: set[str] = set()
    status_items: tuple[str, ...] = ()
    if cur.maybe_sp():
        extended = True
        if cur.keyword("RETURN") != "RETURN":
            cur.fail("expected RETURN")
        cur.sp()
        cur.expect(b"(")
        if not cur.accept(b")"):
            while True:
                opt = cur.keyword("LIST return option")
                if opt not in _LIST_RETURN:
                    cur.fail(f"unknown LIST return option {opt[:20]}")
                if opt == "STATUS":  # RFC 5819 §2
                    cur.sp()
                    status_items = _status_items(cur)
                returns.add(opt)
                if cur.accept(b")"):
                    break
                cur.sp()
    return c.List(
        tag, reference, tuple(patterns), frozenset(selection), frozenset(returns),
        status_items, extended,
    )


def _lsub(cur: Cursor, tag: str, uid: bool) -> c.Command:
    cur.sp()
    reference = cur.decode_mailbox(cur.astring("reference name"), inbox=False)
    cur.sp()
    return c.Lsub(tag, reference, cur.list_mailbox())


def _status(cur: Cursor, tag: str, uid: bool) -> c.Command:
    cur.sp()
    mailbox = cur.mailbox()
    cur.sp()
    return c.Status(tag, mailbox, _status_items(cur))


def _append(cur: Cursor, tag: str, uid: bool) -> c.Command:
    return parse_append_tail(cur, tag)


def parse_append_tail(cur: Cursor, tag: str) -> c.Append:
    """APPEND's arguments from the space before the mailbox (also REPLACE's, RFC 8508)."""
    # RFC 9051 §6.3.12; RFC 3502 MULTIAPPEND; RFC 3516 literal8; RFC 6855 UTF8 (...)
    cur.sp()
    mailbox = cur.mailbox()
    messages: list[c.AppendMessage] = []
    while cur.maybe_sp():
        flags: tuple[str, ...] = ()
        if cur.peek() == 0x28:
            flags = cur.flag_list()
            cur.sp()
        date = None
        if cur.peek() == 0x22:
            date = cur.date_time()
            if date is None:
                cur.fail('invalid date-time, expected "dd-Mon-yyyy hh:mm:ss +zzzz"')
            cur.sp()
        if cur.data[cur.pos : cur.pos + 9].upper() == b"CATENATE ":  # RFC 4469
            messages.append(catenate(cur, flags, date))
            continue
        utf8_wrap = False
        if cur.data[cur.pos : cur.pos + 5].upper() == b"UTF8 ":
            cur.pos += 5
            cur.expect(b"(")
            utf8_wrap = True
        lit = cur.message_literal(allow8=True)
        if lit is None:
            cur.fail("APPEND expects the message as a literal")
        if utf8_wrap:
            cur.expect(b")")
        messages.append(c.AppendMessage(flags, date, lit[0], lit[1]))
    if not messages:
        cur.fail("APPEND expects a message")
    return c.Append(tag, mailbox, tuple(messages))


def _getquota(cur: Cursor, tag: str, uid: bool) -> c.Command:
    cur.sp()
    return c.GetQuota(tag, cur.astring_text("quota root"))


def _setquota(cur: Cursor, tag: str, uid: bool) -> c.Command:
    # RFC 9208 §4.1.3: setquota_list ::= "(" [setquota_resource *(SP setquota_resource)] ")"
    cur.sp()
    root = cur.astring_text("quota root")
    cur.sp()
    cur.expect(b"(")
    limits: list[tuple[str, int]] = []
    if not cur.accept(b")"):
        while True:
            resource = cur.keyword("resource name")
            cur.sp()
            limits.append((resource, cur.number64("resource limit")))
            if cur.accept(b")"):
                break
            cur.sp()
    return c.SetQuota(tag, root, tuple(limits))


def _setacl(cur: Cursor, tag: str, uid: bool) -> c.Command:
    cur.sp()
    mailbox = cur.mailbox()
    cur.sp()
    ident = cur.astring_text("identifier")
    cur.sp()
    rights = cur.astring_text("rights")
    # RFC 4314 §3.1: mod-rights = astring, optionally "+" or "-" prefixed
    body = rights[1:] if rights[:1] in ("+", "-") else rights
    if not all("a" <= ch <= "z" or "0" <= ch <= "9" for ch in body):
        cur.fail("rights must be lower-case letters or digits (RFC 4314 §2.1)")
    return c.SetAcl(tag, mailbox, ident, rights)


# --- selected ------------------------------------------------------------------


def _expunge(cur: Cursor, tag: str, uid: bool) -> c.Command:
    if uid:  # RFC 4315 §2.1: UID EXPUNGE sequence-set
        cur.sp()
        return c.Expunge(tag, cur.sequence_set())
    return c.Expunge(tag)


def _copy_move(cls: type[c.Copy] | type[c.Move]) -> Callable[[Cursor, str, bool], c.Command]:
    def parse(cur: Cursor, tag: str, uid: bool) -> c.Command:
        cur.sp()
        seq = cur.sequence_set()
        cur.sp()
        return cls(tag, uid, seq, cur.mailbox())

    return parse


def _store(cur: Cursor, tag: str, uid: bool) -> c.Command:
    cur.sp()
    seq = cur.sequence_set()
    cur.sp()
    unchanged: int | None = None
    if cur.peek() == 0x28:
        # RFC 7162 §3.1.3: store-modifier = "UNCHANGEDSINCE" SP mod-sequence-valzer
        cur.pos += 1
        while True:
            mod = cur.keyword("STORE modifier")
            if mod != "UNCHANGEDSINCE":
                cur.fail(f"unknown STORE modifier {mod[:20]}")
            cur.sp()
            unchanged = cur.number64("mod-sequence")
            if cur.accept(b")"):
                break
            cur.sp()
        cur.sp()
    mode = "replace"
    if cur.accept(b"+"):
        mode = "add"
    elif cur.accept(b"-"):
        mode = "remove"
    item = cur.keyword("FLAGS")
    if item not in ("FLAGS", "FLAGS.SILENT"):
        cur.fail("STORE expects FLAGS, +FLAGS or -FLAGS")
    cur.sp()
    if cur.peek() == 0x28:
        flags = cur.flag_list()
    else:
        items = [cur.flag()]
        while cur.maybe_sp():
            items.append(cur.flag())
        flags = tuple(dict.fromkeys(items))
    return c.Store(tag, uid, seq, mode, item.endswith(".SILENT"), flags, unchanged)


def _fetch(cur: Cursor, tag: str, uid: bool) -> c.Command:
    cur.sp()
    seq = cur.sequence_set()
    cur.sp()
    items: list[FetchAttr] = []
    if cur.accept(b"("):
        items.append(_fetch_att(cur))
        while cur.maybe_sp():
            items.append(_fetch_att(cur))
        cur.expect(b")")
    else:
        m = _FETCH_NAME.match(cur.data, cur.pos)
        word = m.group().upper().decode("ascii") if m else ""
        if word in _MACROS and cur.data[m.end() : m.end() + 1] != b"[":  # type: ignore[union-attr]
            cur.pos = m.end()  # type: ignore[union-attr]
            items.extend(FetchAttr(n) for n in _MACROS[word])
        else:
            items.append(_fetch_att(cur))
    changedsince: int | None = None
    vanished = False
    if cur.maybe_sp():
        # RFC 4466 §2.4 fetch-modifiers; RFC 7162 §3.1.4.2 CHANGEDSINCE, §3.2.6 VANISHED
        cur.expect(b"(")
        while True:
            mod = cur.keyword("FETCH modifier")
            if mod == "CHANGEDSINCE":
                cur.sp()
                changedsince = cur.number64("mod-sequence")
            elif mod == "VANISHED":
                vanished = True
            else:
                cur.fail(f"unknown FETCH modifier {mod[:20]}")
            if cur.accept(b")"):
                break
            cur.sp()
        if vanished and (not uid or changedsince is None):
            cur.fail("VANISHED requires UID FETCH with CHANGEDSINCE")
    return c.Fetch(tag, uid, seq, tuple(dict.fromkeys(items)), changedsince, vanished)


def _fetch_att(cur: Cursor) -> FetchAttr:
    m = _FETCH_NAME.match(cur.data, cur.pos)
    if not m:
        cur.fail("expected a FETCH item")
    cur.pos = m.end()
    word = m.group().decode("ascii").upper()
    if cur.peek() != 0x5B:  # "["
        if word == "PREVIEW":
            _preview_modifiers(cur)
        if word in _SIMPLE_FETCH:
            return FetchAttr(word)
        cur.fail(f"unknown FETCH item {word[:30]}")
    cur.pos += 1
    if word in ("BODY", "BODY.PEEK"):
        section = _section(cur)
        name, partial_ok = "BODY[]", True
    elif word in ("BINARY", "BINARY.PEEK", "BINARY.SIZE"):
        # RFC 3516 §6: section-binary = "[" [section-part] "]"
        pm = _PART.match(cur.data, cur.pos)
        part: tuple[int, ...] = ()
        if pm:
            cur.pos = pm.end()
            part = tuple(int(x) for x in pm.group().split(b"."))
        cur.expect(b"]")
        section = Section(part)
        name = "BINARY.SIZE[]" if word == "BINARY.SIZE" else "BINARY[]"
        partial_ok = word != "BINARY.SIZE"
    else:
        cur.fail(f"FETCH item {word[:30]} takes no section")
    partial = None
    if partial_ok and cur.accept(b"<"):
        origin = cur.number64("partial origin")
        cur.expect(b".")
        length = cur.number64("partial length")
        if length == 0:
            cur.fail("partial length must not be zero")
        cur.expect(b">")
        partial = (origin, length)
    return FetchAttr(name, section, partial, word.endswith(".PEEK"))


def _preview_modifiers(cur: Cursor) -> None:
    """RFC 8970 §5: ``"PREVIEW" [SP "(" preview-mod *(SP preview-mod) ")"]``, preview-mod
    ``LAZY``. The preview is always computed here (cheaply, from the stored view), which
    LAZY allows, so the modifier is checked and needs nothing else."""
    if cur.data[cur.pos:cur.pos + 2] != b" (":
        return
    cur.pos += 1
    for mod in _paren_keywords(cur, "PREVIEW modifier"):
        if mod != "LAZY":
            cur.fail(f"unknown PREVIEW modifier {mod[:20]}")


def _section(cur: Cursor) -> Section:
    """``section-spec`` up to and including ``]`` (RFC 9051 §9)."""
    part: tuple[int, ...] = ()
    pm = _PART.match(cur.data, cur.pos)
    if pm:
        cur.pos = pm.end()
        part = tuple(int(x) for x in pm.group().split(b"."))
        if cur.accept(b"]"):
            return Section(part)
        cur.expect(b".")
    elif cur.accept(b"]"):
        return Section()
    m = _FETCH_NAME.match(cur.data, cur.pos)
    text = m.group().decode("ascii").upper() if m else ""
    if m:
        cur.pos = m.end()
    fields: tuple[str, ...] = ()
    if text in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
        cur.sp()
        cur.expect(b"(")
        names = [cur.astring_text("header field name")]
        while cur.maybe_sp():
            names.append(cur.astring_text("header field name"))
        cur.expect(b")")
        fields = tuple(names)
    elif text == "MIME":
        if not part:
            cur.fail("MIME needs a part number")
    elif text not in ("HEADER", "TEXT"):
        cur.fail("invalid section, expected HEADER, HEADER.FIELDS, TEXT or MIME")
    cur.expect(b"]")
    return Section(part, text, fields)


# --- SEARCH --------------------------------------------------------------------


def _search(cur: Cursor, tag: str, uid: bool) -> c.Command:
    cur.sp()
    returns: tuple[str, ...] | None = None
    charset: str | None = None
    start = cur.pos
    word = cur.data[start : start + 8].upper()
    partial: tuple[int, int] | None = None
    if word == b"RETURN (":
        # RFC 4731 §3: search-return-opts = SP "RETURN" SP "(" [opts] ")"; RFC 5267 §5
        cur.pos += 7
        options = contexts.parse_return(cur, contexts.SEARCH_RETURN, "SEARCH")
        returns, partial = options.names, options.partial
        cur.sp()
        word = cur.data[cur.pos : cur.pos + 8].upper()
    if word == b"CHARSET ":
        cur.pos += 8
        charset = cur.text(cur.astring("charset"), "charset").upper()
        if charset not in _CHARSETS:
            raise BadCharset(charset, tag)  # RFC 9051 §6.4.4
        cur.sp()
    keys = [_search_key(cur, charset)]
    while cur.maybe_sp():
        keys.append(_search_key(cur, charset))
    criteria = keys[0] if len(keys) == 1 else SearchAnd(tuple(keys))
    return c.Search(tag, uid, criteria, charset, returns, partial)


def _search_string(cur: Cursor, charset: str | None) -> str:
    raw = cur.astring("search string")
    if charset == "US-ASCII" and any(b > 0x7F for b in raw):
        cur.fail("8-bit search string with CHARSET US-ASCII")
    return cur.text(raw, "search string")


def _search_key(cur: Cursor, charset: str | None) -> SearchKey:
    cur.depth += 1
    if cur.depth > _MAX_DEPTH:
        cur.fail("search criteria nested too deeply")
    try:
        return _search_key_inner(cur, charset)
    finally:
        cur.depth -= 1


def _search_key_inner(cur: Cursor, charset: str | None) -> SearchKey:
    ch = cur.peek()
    if ch == 0x28:
        cur.pos += 1
        keys = [_search_key(cur, charset)]
        while cur.maybe_sp():
            keys.append(_search_key(cur, charset))
        cur.expect(b")")
        return keys[0] if len(keys) == 1 else SearchAnd(tuple(keys))
    if 0x30 <= ch <= 0x39 or ch in (0x2A, 0x24):
        return SearchSequence(cur.sequence_set(), uid=False)
    word = cur.keyword("search key")
    if word == "ALL":
        return SearchAll()
    flag = _SEARCH_FLAGS.get(word)
    if flag is not None:
        return SearchFlag(*flag)
    if word == "NEW":
        return SearchAnd((SearchFlag("\\Recent"), SearchFlag("\\Seen", False)))
    if word in ("KEYWORD", "UNKEYWORD"):
        cur.sp()
        return SearchFlag(cur.flag(allow_recent=True), word == "KEYWORD")
    header = _SEARCH_HEADERS.get(word)
    if header is not None:
        cur.sp()
        return SearchHeader(header, _search_string(cur, charset), envelope=True)
    if word == "HEADER":
        cur.sp()
        name = cur.astring_text("header field name")
        cur.sp()
        return SearchHeader(name, _search_string(cur, charset))
    if word in ("BODY", "TEXT"):
        cur.sp()
        return SearchText(_search_string(cur, charset), word == "BODY")
    date = _SEARCH_DATES.get(word)
    if date is not None:
        cur.sp()
        op, sent = date
        return SearchDate(op, cur.date(), sent)  # type: ignore[arg-type]
    if word in ("LARGER", "SMALLER"):
        cur.sp()
        return SearchSize(word == "LARGER", cur.number64("size"))
    if word in ("SAVEDBEFORE", "SAVEDON", "SAVEDSINCE"):  # RFC 8514 §4.2
        cur.sp()
        return SearchSaveDate(word[5:].lower(), cur.date())  # type: ignore[arg-type]
    if word == "SAVEDATESUPPORTED":  # every mailbox keeps save dates
        return SearchAll()
    if word in ("EMAILID", "THREADID"):  # RFC 8474 §6
        cur.sp()
        value = cur.atom("object id")
        if not _OBJECTID.fullmatch(value):
            cur.fail(f"{word} takes an object id (letters, digits, _ and -)")
        return SearchObjectId(word, value)  # type: ignore[arg-type]
    if word in ("OLDER", "YOUNGER"):  # RFC 5032 §3
        cur.sp()
        return SearchAge(word == "OLDER", cur.nz_number("interval"))
    if word == "UID":
        cur.sp()
        return SearchSequence(cur.sequence_set(), uid=True)
    if word == "NOT":
        cur.sp()
        return SearchNot(_search_key(cur, charset))
    if word == "OR":
        cur.sp()
        left = _search_key(cur, charset)
        cur.sp()
        return SearchOr(left, _search_key(cur, charset))
    if word == "MODSEQ":
        # RFC 7162 §3.1.5: "MODSEQ" [search-modsequence-ext] SP mod-sequence-valzer
        cur.sp()
        entry = None
        if cur.peek() == 0x22:
            entry_name = cur.text(cur.string("entry name"), "entry name")
            cur.sp()
            entry_type = cur.keyword("entry type").lower()
            if entry_type not in ("priv", "shared", "all"):
                cur.fail("entry type must be priv, shared or all")
            entry = (entry_name, entry_type)
            cur.sp()
        return SearchModseq(cur.number64("mod-sequence"), entry)
    cur.fail(f"unknown search key {word[:20]}")


# --- dispatch tables -------------------------------------------------------------

_Handler = Callable[[Cursor, str, bool], c.Command]

_COMMANDS: dict[str, _Handler] = {
    "CAPABILITY": _bare(c.Capability),
    "NOOP": _bare(c.Noop),
    "LOGOUT": _bare(c.Logout),
    "STARTTLS": _bare(c.StartTLS),
    "AUTHENTICATE": _authenticate,
    "LOGIN": _login,
    "ID": _id,
    "ENABLE": _enable,
    "SELECT": _select(False),
    "EXAMINE": _select(True),
    "CREATE": _create,
    "DELETE": _one_mailbox(c.Delete),
    "RENAME": _rename,
    "SUBSCRIBE": _one_mailbox(c.Subscribe),
    "UNSUBSCRIBE": _one_mailbox(c.Unsubscribe),
    "LIST": _list,
    "LSUB": _lsub,
    "NAMESPACE": _bare(c.Namespace),
    "STATUS": _status,
    "APPEND": _append,
    "IDLE": _bare(c.Idle),
    "GETQUOTA": _getquota,
    "GETQUOTAROOT": _one_mailbox(c.GetQuotaRoot),
    "SETQUOTA": _setquota,
    "SETACL": _setacl,
    "DELETEACL": _mailbox_and_id(c.DeleteAcl),
    "GETACL": _one_mailbox(c.GetAcl),
    "LISTRIGHTS": _mailbox_and_id(c.ListRights),
    "MYRIGHTS": _one_mailbox(c.MyRights),
    "CHECK": _bare(c.Check),
    "CLOSE": _bare(c.Close),
    "UNSELECT": _bare(c.Unselect),
    "EXPUNGE": _expunge,
    "SEARCH": _search,
    "FETCH": _fetch,
    "STORE": _store,
    "COPY": _copy_move(c.Copy),
    "MOVE": _copy_move(c.Move),
    **EXT_COMMANDS,  # imap/protocol/ext_parser.py
}

# RFC 5256 SORT and THREAD (imap/protocol/sort_thread.py).
_COMMANDS.update(SORT=sort_thread.parse_sort, THREAD=sort_thread.parse_thread)
# RFC 5267 §4.3 (imap/protocol/contexts.py).
_COMMANDS["CANCELUPDATE"] = contexts.parse_cancelupdate

_UID_COMMANDS: dict[str, _Handler] = {
    name: _COMMANDS[name] for name in ("SEARCH", "FETCH", "STORE", "COPY", "MOVE", "EXPUNGE",
                                       "SORT", "THREAD", *EXT_UID_COMMANDS)
}

# The search-key grammar, for the commands that embed it (SORT, THREAD).
CHARSETS = _CHARSETS
search_key = _search_key
