"""directory_ldap layer (see docs/architecture.md): managed slapd or external LDAP, schema,
publishing, national extract import and correspondent search."""

from directory_ldap.entry import DirectoryEntry
from directory_ldap.errors import DirectoryError, DirectoryUnavailable, ImmutableAttributeError
from directory_ldap.service import Directory

__all__ = [
    "Directory",
    "DirectoryEntry",
    "DirectoryError",
    "DirectoryUnavailable",
    "ImmutableAttributeError",
]
