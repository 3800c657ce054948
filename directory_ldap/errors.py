"""Errors of the directory layer; each message says what was wrong and what to do."""

from __future__ import annotations


class DirectoryError(Exception):
    """The directory refused or could not do what was asked."""


class DirectoryUnavailable(DirectoryError):
    """The LDAP server does not answer (managed slapd restarting, external server down)."""


class ImmutableAttributeError(DirectoryError):
    """A published mailbox's address or type would change; they never do once published."""
