"""One typed dataclass per IMAP command, as produced by :func:`parse_command`.

Every command carries its ``tag``. Commands with a ``UID`` variant carry
``uid: bool``. Mailbox names are already decoded to Unicode (from modified
UTF-7, or UTF-8 under IMAP4rev2 / UTF8=ACCEPT) and ``INBOX`` in any case is
normalised to ``INBOX`` (RFC 9051 §5.1).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from imap.protocol.fetch_items import FetchAttr
from imap.protocol.search_keys import SearchKey
from imap.protocol.sequence import SequenceSet
from imap.protocol.spool import SpooledLiteral

__all__ = [
    "Append",
    "AppendMessage",
    "Authenticate",
    "Capability",
    "Check",
    "Close",
    "Command",
    "Copy",
    "Create",
    "Delete",
    "DeleteAcl",
    "Enable",
    "Expunge",
    "Fetch",
    "GetAcl",
    "GetQuota",
    "GetQuotaRoot",
    "Id",
    "Idle",
    "List",
    "ListRights",
    "Login",
    "Logout",
    "Lsub",
    "Move",
    "MyRights",
    "Namespace",
    "Noop",
    "QResync",
    "Rename",
    "Search",
    "Select",
    "SetAcl",
    "SetQuota",
    "StartTLS",
    "Status",
    "Store",
    "Subscribe",
    "Unselect",
    "Unsubscribe",
]


@dataclass(frozen=True, slots=True)
class Command:
    """Base of all commands: the client's tag."""

    tag: str

    @property
    def name(self) -> str:
        """The command name in upper case, as used for logs and capability checks."""
        return type(self).__name__.upper()


# --- any state (RFC 9051 §6.1) -------------------------------------------------


@dataclass(frozen=True, slots=True)
class Capability(Command):
    """``CAPABILITY``."""


@dataclass(frozen=True, slots=True)
class Noop(Command):
    """``NOOP``."""


@dataclass(frozen=True, slots=True)
class Logout(Command):
    """``LOGOUT``."""


@dataclass(frozen=True, slots=True)
class Id(Command):
    """``ID NIL`` or ``ID ("name" "value" ...)`` (RFC 2971); None for NIL."""

    params: tuple[tuple[str, str | None], ...] | None = None


# --- not authenticated (RFC 9051 §6.2) -----------------------------------------


@dataclass(frozen=True, slots=True)
class StartTLS(Command):
    """``STARTTLS``."""


@dataclass(frozen=True, slots=True)
class Authenticate(Command):
    """``AUTHENTICATE mech [initial-response]`` (RFC 4959 SASL-IR).

    ``initial_response`` is the base64 text as sent; ``=`` (empty response) is
    kept as ``""``; None when the client sent none.
    """

    mechanism: str = ""
    initial_response: str | None = None


@dataclass(frozen=True, slots=True)
class Login(Command):
    """``LOGIN user password``. Never log ``password``."""

    username: str = ""
    password: str = field(default="", repr=False)


# --- authenticated (RFC 9051 §6.3) ---------------------------------------------


@dataclass(frozen=True, slots=True)
class Enable(Command):
    """``ENABLE cap...`` (RFC 5161), capability names upper-cased."""

    capabilities: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class QResync:
    """``QRESYNC (uidvalidity modseq [known-uids [(seqs uids)]])`` (RFC 7162 §3.2.5)."""

    uidvalidity: int
    modseq: int
    known_uids: SequenceSet | None = None
    seq_match: tuple[SequenceSet, SequenceSet] | None = None


@dataclass(frozen=True, slots=True)
class Select(Command):
    """``SELECT``/``EXAMINE`` (``readonly``) with CONDSTORE/QRESYNC parameters."""

    mailbox: str = ""
    readonly: bool = False
    condstore: bool = False
    qresync: QResync | None = None


@dataclass(frozen=True, slots=True)
class Create(Command):
    """``CREATE mailbox [(USE (\\Sent ...))]`` (RFC 6154 §3)."""

    mailbox: str = ""
    special_use: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Delete(Command):
    """``DELETE mailbox``."""

    mailbox: str = ""


@dataclass(frozen=True, slots=True)
class Rename(Command):
    """``RENAME old new``."""

    mailbox: str = ""
    new_name: str = ""


@dataclass(frozen=True, slots=True)
class Subscribe(Command):
    """``SUBSCRIBE mailbox``."""

    mailbox: str = ""


@dataclass(frozen=True, slots=True)
class Unsubscribe(Command):
    """``UNSUBSCRIBE mailbox``."""

    mailbox: str = ""


@dataclass(frozen=True, slots=True)
class List(Command):
    """``LIST`` with RFC 5258 LIST-EXTENDED options.

    ``selection`` holds SUBSCRIBED, REMOTE, RECURSIVEMATCH, SPECIAL-USE;
    ``returns`` holds SUBSCRIBED, CHILDREN, SPECIAL-USE, STATUS; ``status_items``
    are the RFC 5819 LIST-STATUS items. ``extended`` tells whether the client
    used the extended syntax (then the reply may carry extended data).
    """

    reference: str = ""
    patterns: tuple[str, ...] = ()
    selection: frozenset[str] = frozenset()
    returns: frozenset[str] = frozenset()
    status_items: tuple[str, ...] = ()
    extended: bool = False


@dataclass(frozen=True, slots=True)
class Lsub(Command):
    """``LSUB reference pattern`` (IMAP4rev1 only)."""

    reference: str = ""
    pattern: str = ""


@dataclass(frozen=True, slots=True)
class Namespace(Command):
    """``NAMESPACE`` (RFC 2342)."""


@dataclass(frozen=True, slots=True)
class Status(Command):
    """``STATUS mailbox (items)``, items upper-cased (incl. SIZE, HIGHESTMODSEQ)."""

    mailbox: str = ""
    items: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AppendMessage:
    """One message of an APPEND (several with RFC 3502 MULTIAPPEND)."""

    flags: tuple[str, ...]
    internal_date: datetime.datetime | None
    data: bytes | SpooledLiteral = field(repr=False)
    """The message; a large one stays in the reader's encrypted spool until stored."""
    binary: bool = False  # sent as literal8 ~{n} (RFC 3516 §4.4)


@dataclass(frozen=True, slots=True)
class Append(Command):
    """``APPEND mailbox [flags] [date-time] literal``."""

    mailbox: str = ""
    messages: tuple[AppendMessage, ...] = ()


@dataclass(frozen=True, slots=True)
class Idle(Command):
    """``IDLE`` (RFC 2177); the session then reads ``DONE`` with ``read_line``."""


@dataclass(frozen=True, slots=True)
class GetQuota(Command):
    """``GETQUOTA root`` (RFC 9208)."""

    root: str = ""


@dataclass(frozen=True, slots=True)
class GetQuotaRoot(Command):
    """``GETQUOTAROOT mailbox`` (RFC 9208)."""

    mailbox: str = ""


@dataclass(frozen=True, slots=True)
class SetQuota(Command):
    """``SETQUOTA root (resource limit ...)`` (RFC 9208), resources upper-cased."""

    root: str = ""
    limits: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True, slots=True)
class SetAcl(Command):
    """``SETACL mailbox identifier [+|-]rights`` (RFC 4314 §3.1)."""

    mailbox: str = ""
    identifier: str = ""
    rights: str = ""


@dataclass(frozen=True, slots=True)
class DeleteAcl(Command):
    """``DELETEACL mailbox identifier`` (RFC 4314 §3.2)."""

    mailbox: str = ""
    identifier: str = ""


@dataclass(frozen=True, slots=True)
class GetAcl(Command):
    """``GETACL mailbox`` (RFC 4314 §3.3)."""

    mailbox: str = ""


@dataclass(frozen=True, slots=True)
class ListRights(Command):
    """``LISTRIGHTS mailbox identifier`` (RFC 4314 §3.4)."""

    mailbox: str = ""
    identifier: str = ""


@dataclass(frozen=True, slots=True)
class MyRights(Command):
    """``MYRIGHTS mailbox`` (RFC 4314 §3.5)."""

    mailbox: str = ""


# --- selected (RFC 9051 §6.4) --------------------------------------------------


@dataclass(frozen=True, slots=True)
class Check(Command):
    """``CHECK`` (IMAP4rev1; a NOOP in practice)."""


@dataclass(frozen=True, slots=True)
class Close(Command):
    """``CLOSE``."""


@dataclass(frozen=True, slots=True)
class Unselect(Command):
    """``UNSELECT`` (RFC 3691)."""


@dataclass(frozen=True, slots=True)
class Expunge(Command):
    """``EXPUNGE`` or ``UID EXPUNGE set`` (RFC 4315 UIDPLUS): ``uid_set`` then."""

    uid_set: SequenceSet | None = None


@dataclass(frozen=True, slots=True)
class Search(Command):
    """``[UID] SEARCH [RETURN (...)] [CHARSET x] criteria``.

    ``returns`` is None for a plain SEARCH (untagged SEARCH reply) and a tuple
    for RFC 4731 ESEARCH (empty tuple ``RETURN ()`` means ALL); items among
    MIN MAX ALL COUNT SAVE (RFC 5182), CONTEXT UPDATE PARTIAL (RFC 5267 §4); ``partial``
    is PARTIAL's ``(low, high)``.
    """

    uid: bool = False
    criteria: SearchKey | None = None
    charset: str | None = None
    returns: tuple[str, ...] | None = None
    partial: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class Fetch(Command):
    """``[UID] FETCH set items [(CHANGEDSINCE n [VANISHED])]`` (RFC 7162 §3.1.4, §3.2.6)."""

    uid: bool = False
    sequence_set: SequenceSet = SequenceSet()
    items: tuple[FetchAttr, ...] = ()
    changedsince: int | None = None
    vanished: bool = False


@dataclass(frozen=True, slots=True)
class Store(Command):
    """``[UID] STORE set [(UNCHANGEDSINCE n)] [+|-]FLAGS[.SILENT] flags``.

    ``mode`` is ``"replace"``, ``"add"`` or ``"remove"``.
    """

    uid: bool = False
    sequence_set: SequenceSet = SequenceSet()
    mode: str = "replace"
    silent: bool = False
    flags: tuple[str, ...] = ()
    unchangedsince: int | None = None


@dataclass(frozen=True, slots=True)
class Copy(Command):
    """``[UID] COPY set mailbox``."""

    uid: bool = False
    sequence_set: SequenceSet = SequenceSet()
    mailbox: str = ""


@dataclass(frozen=True, slots=True)
class Move(Command):
    """``[UID] MOVE set mailbox`` (RFC 6851)."""

    uid: bool = False
    sequence_set: SequenceSet = SequenceSet()
    mailbox: str = ""
