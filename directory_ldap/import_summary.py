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
    internationalised: int = 0
    """Rows with an internationalised address (RFC 6531), imported like the others."""
    utf8_local: list[str] = field(default_factory=list)
    """Those with a UTF-8 local part: no ASCII form, so no LDAP ``mail`` (addresses.py)."""
    resumed: bool = False
    generation: str = ""  # embedded mode: the national generation now current
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.deleted)

    def note_addresses(self, reader: object) -> None:
        """Copies the reader's counts of internationalised addresses (once it is read)."""
        self.internationalised = int(getattr(reader, "internationalised", 0))
        self.utf8_local = list(getattr(reader, "utf8_local", []))

    def internationalised_lines(self) -> list[str]:
        """What the import report says about internationalised addresses (nothing if none)."""
        if not self.internationalised:
            return []
        lines = [f"{self.internationalised} internationalised addresses (RFC 6531) imported: "
                 "the UTF-8 form in mssanteMailUTF8, the ASCII form (domain in A-labels) in mail"]
        if self.utf8_local:
            shown = ", ".join(self.utf8_local[:DELETED_LISTED])
            more = len(self.utf8_local) - DELETED_LISTED
            lines.append(
                f"{len(self.utf8_local)} with a non-ASCII local part have no ASCII form: LDAP "
                "mail is ASCII only (RFC 4524), so they have no mail attribute and address "
                "books that read only mail show no address for them; the gateway finds them "
                f"by mssanteMailUTF8: {shown}"
                + (f" and {more} more" if more > 0 else ""))
        return lines

    def note_deleted(self, address: str) -> None:
        self.deleted += 1
        if len(self.deleted_addresses) < DELETED_LISTED:
            self.deleted_addresses.append(address)
