"""The proof of a rights change made over IMAP (RFC 4314 SETACL / DELETEACL).

A manager of an organisational mailbox giving a member write access to a folder, or
taking it away, changes a delegation as much as ``mssante delegations grant`` does; the
ledger records it the same way (:mod:`accounts.audit`), naming the account that made the
change and the folder, in the transaction that stores the new rights.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from accounts import audit


@dataclass(frozen=True)
class AclChange:
    """Who changes the rights on which owner's folder, and the rights held before."""

    actor: str
    owner: str
    folder: str
    before: str

    def kind(self, after: str) -> str | None:
        """granted (none before), revoked (none after), changed, or None (no change)."""
        if after == self.before:
            return None
        if not self.before:
            return "delegation-granted"
        return "delegation-revoked" if not after else "delegation-changed"

    async def record(self, conn: AsyncConnection, identifier: str, after: str) -> None:
        kind = self.kind(after)
        if kind is None:
            return
        details: dict[str, object] = {"delegate": identifier, "folder": self.folder,
                                      "rights": after}
        if self.before:
            details["before"] = {"rights": self.before}
        await audit.record(conn, kind, self.owner, self.actor, **details)
