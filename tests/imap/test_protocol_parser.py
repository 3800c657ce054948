"""Parser tests: every command, and the tricky syntax from RFC 3501 / RFC 9051 examples."""

from __future__ import annotations

import datetime

import pytest

from imap.protocol import (
    Append,
    Authenticate,
    BadCharset,
    Capability,
    Check,
    Close,
    Copy,
    Create,
    Delete,
    DeleteAcl,
    Enable,
    Expunge,
    Fetch,
    FetchAttr,
    GetAcl,
    GetQuota,
    GetQuotaRoot,
    Id,
    Idle,
    List,
    ListRights,
    Login,
    Logout,
    Lsub,
    Move,
    MyRights,
    Namespace,
    Noop,
    ParseError,
    Rename,
    Search,
    SearchAll,
    SearchAnd,
    SearchDate,
    SearchFlag,
    SearchHeader,
    SearchModseq,
    SearchNot,
    SearchOr,
    SearchSequence,
    SearchSize,
    SearchText,
    Section,
    Select,
    SequenceSet,
    SetAcl,
    SetQuota,
    StartTLS,
    Status,
    Store,
    Subscribe,
    Unselect,
    Unsubscribe,
    parse_command,
)


def p(line: bytes | str, utf8: bool = False):  # type: ignore[no-untyped-def]
    data = line.encode("utf-8") if isinstance(line, str) else line
    return parse_command(data, utf8=utf8)


def bad(line: bytes | str, utf8: bool = False) -> ParseError:
    with pytest.raises(ParseError) as info:
        p(line, utf8)
    return info.value


@pytest.mark.parametrize(
    ("line", "cls"),
    [
        ("a CAPABILITY", Capability),
        ("a noop", Noop),
        ("a LOGOUT", Logout),
        ("a STARTTLS", StartTLS),
        ("a NAMESPACE", Namespace),
        ("a CHECK", Check),
        ("a CLOSE", Close),
        ("a UNSELECT", Unselect),
        ("a IDLE", Idle),
        ("a EXPUNGE", Expunge),
    ],
)
def test_commands_without_arguments(line: str, cls: type) -> None:
    cmd = p(line)
    assert type(cmd) is cls and cmd.tag == "a"
    assert bad(line + " extra").tag == "a"


def test_login_with_quoted_escapes_and_literal() -> None:
    cmd = p(b'a001 LOGIN SMITH "sesa\\"me\\\\"')
    assert cmd == Login("a001", "SMITH", 'sesa"me\\')
    cmd = p(b"a LOGIN {5}\r\nd\xc3\xa9jo {3+}\r\npw!")
    assert cmd == Login("a", "déjo", "pw!")
    assert "pw!" not in repr(cmd)


def test_authenticate_with_sasl_ir() -> None:
    assert p("a AUTHENTICATE PLAIN") == Authenticate("a", "PLAIN", None)
    assert p("a AUTHENTICATE plain =") == Authenticate("a", "PLAIN", "")
    assert p("a AUTHENTICATE PLAIN AHVzZXIAcGFzcw==").initial_response == "AHVzZXIAcGFzcw=="
    assert "base64" in bad("a AUTHENTICATE PLAIN !!!").reason


def test_id_and_enable() -> None:
    assert p("a ID NIL") == Id("a", None)
    cmd = p('a ID ("name" "Thunderbird" "version" NIL)')
    assert cmd == Id("a", (("name", "Thunderbird"), ("version", None)))
    assert p("a ENABLE CONDSTORE utf8=accept") == Enable("a", ("CONDSTORE", "UTF8=ACCEPT"))
    assert bad("a ENABLE").reason == "missing arguments"


def test_select_examine_condstore_qresync() -> None:
    assert p("a SELECT inbox") == Select("a", "INBOX")
    assert p("a EXAMINE Sent (CONDSTORE)") == Select("a", "Sent", True, True)
    # RFC 7162 §3.2.5.2 example
    cmd = p("A02 SELECT INBOX (QRESYNC (67890007 90060115194045000 41:211,214:541 (1:10 41:50)))")
    assert isinstance(cmd, Select) and cmd.qresync is not None
    assert cmd.qresync.uidvalidity == 67890007
    assert cmd.qresync.modseq == 90060115194045000
    assert cmd.qresync.known_uids == SequenceSet.parse("41:211,214:541")
    assert cmd.qresync.seq_match == (SequenceSet.parse("1:10"), SequenceSet.parse("41:50"))
    assert "SELECT parameter" in bad("a SELECT INBOX (FOO)").reason
    assert "'*'" in bad("a SELECT INBOX (QRESYNC (1 2 1:*))").reason


def test_mailbox_commands() -> None:
    assert p("a CREATE Drafts (USE (\\Drafts))") == Create("a", "Drafts", ("\\Drafts",))
    assert p("a CREATE foo") == Create("a", "foo")
    assert p('a DELETE "a b"') == Delete("a", "a b")
    assert p("a RENAME old new") == Rename("a", "old", "new")
    assert p("a SUBSCRIBE x") == Subscribe("a", "x")
    assert p("a UNSUBSCRIBE x") == Unsubscribe("a", "x")
    assert p('a LSUB "" *') == Lsub("a", "", "*")
    st = p("a STATUS blurdybloop (UIDNEXT MESSAGES SIZE HIGHESTMODSEQ deleted)")
    assert st == Status(
        "a", "blurdybloop", ("UIDNEXT", "MESSAGES", "SIZE", "HIGHESTMODSEQ", "DELETED")
    )
    assert "unknown STATUS item" in bad("a STATUS x (FOO)").reason
    assert "at least one" in bad("a STATUS x ()").reason


def test_mailbox_names_mutf7_and_utf8() -> None:
    assert p("a SELECT ~peter/mail/&U,BTFw-/&ZeVnLIqe-").mailbox == "~peter/mail/台北/日本語"
    # The same name in UTF-8 is refused from a rev1 client...
    assert "modified UTF-7" in bad('a SELECT "~peter/mail/台北"').reason
    assert "8-bit" in bad("a SELECT ~peter/mail/台北").reason
    # ...and taken as is under IMAP4rev2 / UTF8=ACCEPT, where '&' is literal.
    assert p('a SELECT "台北&"', utf8=True).mailbox == "台北&"
    assert "invalid mailbox name" in bad("a SELECT &Jjo").reason


def test_list_basic_and_extended() -> None:
    assert p('a LIST "" %') == List("a", "", ("%",))
    assert p("a LIST ~/Mail/ %/*").patterns == ("%/*",)
    # RFC 5258 §5 examples
    cmd = p('A01 LIST (REMOTE SUBSCRIBED RECURSIVEMATCH) "" % RETURN (CHILDREN)')
    assert isinstance(cmd, List) and cmd.extended
    assert cmd.selection == {"REMOTE", "SUBSCRIBED", "RECURSIVEMATCH"}
    assert cmd.returns == {"CHILDREN"}
    cmd = p('a LIST "" ("INBOX" "Drafts" Sent/%) RETURN (SPECIAL-USE STATUS (MESSAGES UNSEEN))')
    assert cmd.patterns == ("INBOX", "Drafts", "Sent/%")
    assert cmd.status_items == ("MESSAGES", "UNSEEN")
    assert cmd.returns == {"SPECIAL-USE", "STATUS"}
    assert p('a LIST (SPECIAL-USE) "" *').selection == {"SPECIAL-USE"}
    assert "RECURSIVEMATCH" in bad('a LIST (RECURSIVEMATCH) "" %').reason
    assert "selection option" in bad('a LIST (BOGUS) "" %').reason
    assert "return option" in bad('a LIST "" % RETURN (BOGUS)').reason


def test_append_flags_date_literal_and_multiappend() -> None:
    line = b'A003 APPEND saved-messages (\\Seen) "17-Jul-1996 02:44:25 -0700" {23}\r\n'
    cmd = p(line + b"Date: Mon, 7 Feb 1994\r\n")
    assert isinstance(cmd, Append) and len(cmd.messages) == 1
    msg = cmd.messages[0]
    assert msg.flags == ("\\Seen",) and msg.data == b"Date: Mon, 7 Feb 1994\r\n"
    assert msg.internal_date == datetime.datetime(
        1996, 7, 17, 2, 44, 25, tzinfo=datetime.timezone(-datetime.timedelta(hours=7))
    )
    cmd = p(b'a APPEND x " 7-Feb-1994 21:52:25 +0100" {1+}\r\nA (\\Draft) ~{2}\r\n\x00B')
    assert [m.data for m in cmd.messages] == [b"A", b"\x00B"]
    assert cmd.messages[1].binary and cmd.messages[1].flags == ("\\Draft",)
    assert p(b"a APPEND x UTF8 (~{1}\r\nZ)").messages[0].data == b"Z"
    assert "date-time" in bad(b'a APPEND x "abc"').reason
    assert "as a literal" in bad(b"a APPEND x (\\Seen) foo").reason
    assert "date-time" in bad(b'a APPEND x "32-Foo-1994 21:52:25 +0100" {1}\r\nA').reason
    assert "\\Recent" in bad(b"a APPEND x (\\Recent) {1}\r\nA").reason
    assert "NUL" in bad(b"a APPEND x {2}\r\n\x00B").reason
    assert "shorter" in bad(b"a APPEND x {20}\r\nabc").reason


def test_fetch_items_and_macros() -> None:
    cmd = p("a FETCH 2:4 ALL")
    assert isinstance(cmd, Fetch)
    assert [i.name for i in cmd.items] == ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"]
    assert [i.name for i in p("a FETCH 1 FAST").items] == ["FLAGS", "INTERNALDATE", "RFC822.SIZE"]
    assert p("a FETCH 1 FULL").items[-1] == FetchAttr("BODY")
    cmd = p("a FETCH 1:* (FLAGS BODY.PEEK[1.2.HEADER.FIELDS (FROM SUBJECT)]<0.2048>)")
    att = cmd.items[1]
    assert att == FetchAttr(
        "BODY[]", Section((1, 2), "HEADER.FIELDS", ("FROM", "SUBJECT")), (0, 2048), True
    )
    assert att.response_name() == "BODY[1.2.HEADER.FIELDS (FROM SUBJECT)]<0>"
    assert not att.sets_seen
    assert p("a FETCH 1 BODY[1.MIME]").items[0].section == Section((1,), "MIME")
    assert p("a FETCH 1 BODY[TEXT]").items[0].sets_seen
    assert p("a FETCH 1 body[]").items[0].response_name() == "BODY[]"
    assert p("a FETCH 1 BODY[3]").items[0].section == Section((3,))
    notf = p('a FETCH 1 BODY[HEADER.FIELDS.NOT ("X-Spam" Received)]').items[0]
    assert notf.section == Section((), "HEADER.FIELDS.NOT", ("X-Spam", "Received"))
    binary = p("a UID FETCH 1 (BINARY.PEEK[1]<0.100> BINARY.SIZE[2] UID MODSEQ)")
    assert [i.response_name() for i in binary.items] == [
        "BINARY[1]<0>",
        "BINARY.SIZE[2]",
        "UID",
        "MODSEQ",
    ]
    assert "MIME needs" in bad("a FETCH 1 BODY[MIME]").reason
    assert "unknown FETCH item" in bad("a FETCH 1 (FLAGS BOGUS)").reason
    assert "zero" in bad("a FETCH 1 BODY[]<0.0>").reason
    assert "invalid section" in bad("a FETCH 1 BODY[FOO]").reason


def test_fetch_modifiers_condstore_qresync() -> None:
    cmd = p("s100 UID FETCH 300:500 (FLAGS) (CHANGEDSINCE 12345 VANISHED)")
    assert cmd.uid and cmd.changedsince == 12345 and cmd.vanished
    assert p("a FETCH 1:* (FLAGS) (CHANGEDSINCE 7)").changedsince == 7
    assert "VANISHED" in bad("a FETCH 1:* (FLAGS) (CHANGEDSINCE 7 VANISHED)").reason
    assert "VANISHED" in bad("a UID FETCH 1:* (FLAGS) (VANISHED)").reason


def test_store_variants() -> None:
    cmd = p("A003 STORE 2:4 +FLAGS (\\Deleted)")
    assert cmd == Store("A003", False, SequenceSet.parse("2:4"), "add", False, ("\\Deleted",))
    cmd = p("a UID STORE 5:2 (UNCHANGEDSINCE 320162338) -FLAGS.SILENT \\seen $Forwarded")
    assert cmd.mode == "remove" and cmd.silent and cmd.unchangedsince == 320162338
    assert cmd.flags == ("\\Seen", "$Forwarded")
    assert list(cmd.sequence_set.iter(10)) == [2, 3, 4, 5]
    assert p("a STORE $ FLAGS ()").flags == () and p("a STORE $ FLAGS ()").sequence_set.saved
    assert "STORE expects FLAGS" in bad("a STORE 1 +LABELS (x)").reason


def test_copy_move_expunge_uid() -> None:
    assert p("a COPY 2:4 MEETING") == Copy("a", False, SequenceSet.parse("2:4"), "MEETING")
    assert p("a UID MOVE 42:69 foo") == Move("a", True, SequenceSet.parse("42:69"), "foo")
    assert p("a UID EXPUNGE 3000:3002") == Expunge("a", SequenceSet.parse("3000:3002"))
    assert "not a UID command" in bad("a UID LIST x y").reason


def test_quota_and_acl() -> None:
    assert p('a GETQUOTA ""') == GetQuota("a", "")
    assert p("a GETQUOTAROOT INBOX") == GetQuotaRoot("a", "INBOX")
    assert p('a SETQUOTA "" (STORAGE 512 message 100)') == SetQuota(
        "a", "", (("STORAGE", 512), ("MESSAGE", 100))
    )
    assert p("a SETACL INBOX/Drafts John lrswickxte") == SetAcl(
        "a", "INBOX/Drafts", "John", "lrswickxte"
    )
    assert p("a SETACL x Fred +rw").rights == "+rw"
    assert "rights" in bad("a SETACL x Fred +R!").reason
    assert p("a DELETEACL x -Fred") == DeleteAcl("a", "x", "-Fred")
    assert p("a GETACL x") == GetAcl("a", "x")
    assert p("a LISTRIGHTS x smith") == ListRights("a", "x", "smith")
    assert p("a MYRIGHTS x") == MyRights("a", "x")


def test_search_keys_complete() -> None:
    cmd = p(
        'a SEARCH FLAGGED SINCE 1-Feb-1994 NOT FROM "Smith" OR TO x CC y '
        "(BCC b SUBJECT s) BODY bo TEXT t HEADER X-MSS-INS 123 LARGER 10 SMALLER 20 "
        'ON "3-Mar-2024" BEFORE 1-Jan-2000 SENTBEFORE 1-Jan-2000 SENTON 1-Jan-2000 '
        "SENTSINCE 1-Jan-2000 KEYWORD $Label UNKEYWORD foo NEW OLD RECENT ANSWERED "
        "UNANSWERED DELETED UNDELETED DRAFT UNDRAFT SEEN UNSEEN UNFLAGGED ALL "
        "UID 1:* 2,4:* $ MODSEQ 5 YOUNGER 60"
    )
    assert isinstance(cmd, Search) and isinstance(cmd.criteria, SearchAnd)
    keys = cmd.criteria.keys
    assert keys[0] == SearchFlag("\\Flagged")
    assert keys[1] == SearchDate("since", datetime.date(1994, 2, 1), False)
    assert keys[2] == SearchNot(SearchHeader("From", "Smith", envelope=True))
    assert keys[3] == SearchOr(SearchHeader("To", "x", envelope=True),
                               SearchHeader("Cc", "y", envelope=True))
    assert keys[4] == SearchAnd((SearchHeader("Bcc", "b", envelope=True),
                                 SearchHeader("Subject", "s", envelope=True)))
    assert keys[5] == SearchText("bo", True) and keys[6] == SearchText("t", False)
    assert keys[7] == SearchHeader("X-MSS-INS", "123")
    assert keys[8] == SearchSize(True, 10)
    assert SearchAll() in keys
    assert SearchSequence(SequenceSet(saved=True), False) in keys
    assert keys[-2] == SearchModseq(5)


def test_search_charset_return_and_errors() -> None:
    cmd = p(b"a UID SEARCH RETURN (MIN COUNT SAVE) CHARSET utf-8 SUBJECT {5}\r\n\xc3\xa9t\xc3\xa9")
    assert cmd.uid and cmd.returns == ("MIN", "COUNT", "SAVE") and cmd.charset == "UTF-8"
    assert cmd.criteria == SearchHeader("Subject", "été", envelope=True)
    assert p("a SEARCH RETURN () ALL").returns == ()
    cmd = p('a SEARCH MODSEQ "/flags/\\\\draft" all 620162338')
    assert cmd.criteria == SearchModseq(620162338, ("/flags/\\draft", "all"))
    err = bad("a SEARCH CHARSET KOI8-R FROM x")
    assert isinstance(err, BadCharset) and err.tag == "a"
    assert err.response() == (
        b"a NO [BADCHARSET (UTF-8 US-ASCII)] Charset KOI8-R is not supported, use UTF-8\r\n"
    )
    assert "US-ASCII" in bad(b'a SEARCH CHARSET US-ASCII TEXT "\xc3\xa9"').reason
    assert "unknown search key" in bad("a SEARCH FOO").reason
    assert "date" in bad("a SEARCH SINCE 31-Feb-2024").reason
    assert "nested too deeply" in bad("a SEARCH " + "NOT " * 100 + "ALL").reason
    assert "nested too deeply" in bad("a SEARCH " + "(" * 100 + "ALL" + ")" * 100).reason
    assert "return option" in bad("a SEARCH RETURN (FOO) ALL").reason


def test_parse_errors_carry_tag_and_reason() -> None:
    err = bad("abc BOGUS")
    assert err.tag == "abc" and err.response() == b"abc BAD unknown command BOGUS\r\n"
    err = bad("")
    assert err.tag is None and err.response().startswith(b"* BAD ")
    assert bad("+tag NOOP").tag is None  # '+' cannot start a tag (RFC 9051 §9)
    assert bad("a").reason == "missing arguments"
    assert "sequence set" in bad("a FETCH 0:3 FLAGS").reason
    assert "out of range" in bad("a FETCH 4294967296 FLAGS").reason
    assert "expected password" in bad("a LOGIN x  y").reason
