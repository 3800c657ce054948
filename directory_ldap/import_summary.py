"""What an import of the national extract did, for the command line and the logs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from directory_ldap.extract import BadRow

DELETED_LISTED = 50
"""How many deleted addresses a summary names (the count is always exact)."""

Progress = Callable[[int, int], None]
"""``progress(done, total)``; ``total`` is 0 while it is not known yet."""


@dataclass
class ImportSummary:
    file: str
    rows: int = 0
    added: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    deleted_addresses: list[str] = field(default_factory=list)  # the first DELETED_LISTED
    failed: list[tuple[str, str]] = field(default_factory=list)
    bad: list[BadRow] = field(default_factory=list)
    used_columns: list[str] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    missing_columns: list[str] = field(default_factory=list)
    resumed: bool = False
    generation: str = ""  # embedded mode: the national generation now current
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.deleted)

    def note_deleted(self, address: str) -> None:
        self.deleted += 1
        if len(self.deleted_addresses) < DELETED_LISTED:
            self.deleted_addresses.append(address)
