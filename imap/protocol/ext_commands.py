"""Typed commands of the extensions added beside the base protocol (one dataclass each).

Kept apart from :mod:`imap.protocol.commands` so that each extension is one reviewable
unit; they share its :class:`~imap.protocol.commands.Command` base.
"""

from __future__ import annotations

from dataclasses import dataclass

from imap.protocol.commands import AppendMessage, Command
from imap.protocol.sequence import SequenceSet
from imap.protocol.spool import SpooledLiteral

__all__ = ["CatPart", "CatenateMessage", "Compress", "EventGroup", "GetMetadata", "Notify",
           "Replace", "SetMetadata"]


@dataclass(frozen=True, slots=True)
class Compress(Command):
    """``COMPRESS mechanism`` (RFC 4978 §3); only ``DEFLATE`` is defined."""

    mechanism: str = "DEFLATE"


@dataclass(frozen=True, slots=True)
class CatPart:
    """One ``cat-part`` (RFC 4469 §5): ``TEXT literal`` (``text``) or ``URL astring``
    (``url``)."""

    text: bytes | SpooledLiteral | None = None
    url: str | None = None


@dataclass(frozen=True, slots=True)
class CatenateMessage(AppendMessage):
    """An APPEND message given as ``CATENATE (cat-part ...)`` (RFC 4469); ``data`` stays
    empty until the parts are put together."""

    parts: tuple[CatPart, ...] = ()


@dataclass(frozen=True, slots=True)
class Replace(Command):
    """``[UID] REPLACE n mailbox append-message`` (RFC 8508 §3)."""

    uid: bool = False
    number: int = 0
    mailbox: str = ""
    message: AppendMessage | None = None

    @property
    def sequence_set(self) -> SequenceSet:
        return SequenceSet(((self.number, self.number),))


@dataclass(frozen=True, slots=True)
class EventGroup:
    """One ``event-group`` of NOTIFY SET (RFC 5465 §8): which mailboxes, which events.

    ``filter`` is ``SELECTED``, ``SELECTED-DELAYED``, ``INBOXES``, ``PERSONAL``,
    ``SUBSCRIBED``, ``SUBTREE`` or ``MAILBOXES`` (the last two with ``mailboxes``);
    ``events`` are the event names as the RFC spells them (empty: ``NONE``);
    ``fetch_atts`` are MessageNew's FETCH attributes, upper-case.
    """

    filter: str
    mailboxes: tuple[str, ...] = ()
    events: tuple[str, ...] = ()
    fetch_atts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Notify(Command):
    """``NOTIFY NONE`` (``groups`` None) or ``NOTIFY SET [(STATUS)] groups`` (RFC 5465)."""

    groups: tuple[EventGroup, ...] | None = None
    status: bool = False


@dataclass(frozen=True, slots=True)
class GetMetadata(Command):
    """``GETMETADATA [(MAXSIZE n DEPTH d)] mailbox entries`` (RFC 5464 §4.2); ``mailbox``
    None is the server (``""``); entry names lower-case; ``depth`` None is infinity."""

    mailbox: str | None = None
    entries: tuple[str, ...] = ()
    maxsize: int | None = None
    depth: int | None = 0


@dataclass(frozen=True, slots=True)
class SetMetadata(Command):
    """``SETMETADATA mailbox (entry value ...)`` (RFC 5464 §4.3); a None value removes."""

    mailbox: str | None = None
    values: tuple[tuple[str, bytes | None], ...] = ()
