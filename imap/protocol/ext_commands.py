"""Typed commands of the extensions added beside the base protocol (one dataclass each).

Kept apart from :mod:`imap.protocol.commands` so that each extension is one reviewable
unit; they share its :class:`~imap.protocol.commands.Command` base.
"""

from __future__ import annotations

from dataclasses import dataclass

from imap.protocol.commands import Command

__all__ = ["Compress"]


@dataclass(frozen=True, slots=True)
class Compress(Command):
    """``COMPRESS mechanism`` (RFC 4978 §3); only ``DEFLATE`` is defined."""

    mechanism: str = "DEFLATE"
