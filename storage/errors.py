"""Errors of the storage layer.

Each one says what is wrong and what the operator can do, because most of them surface at
start-up (database unreachable, key file missing) or during an audit (integrity failures),
where a person reads the message, not a program.
"""

from __future__ import annotations


class StorageError(Exception):
    """Base class of every storage refusal."""


class DatabaseUnavailable(StorageError):
    """The database server did not answer (or refused us) in time."""


class KeyringError(StorageError):
    """The key file is unreadable, malformed or has unsafe permissions."""


class KeyFileMissing(KeyringError):
    """The key file is absent while encrypted data (or the configuration) requires it."""


class UnknownKeyId(KeyringError):
    """Data was sealed under a master key that the key file does not hold."""


class BlobNotFound(StorageError):
    """No blob with this id (or its body was purged)."""


class BlobIntegrityError(StorageError):
    """A stored body failed authentication: it was altered, truncated or reordered."""


class NotFound(StorageError):
    """A row addressed by id or name does not exist."""


class AlreadyExists(StorageError):
    """A row with the same unique key already exists."""
