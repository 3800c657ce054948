"""The directory as the rest of the gateway sees it: publish, unpublish, lookup, search.

In embedded mode (no ``[directory] url``) it owns a :class:`ManagedSlapd` and talks to it over
the ldapi socket as the service identity (SASL EXTERNAL: no secret to keep). With a url it
uses that server with the configured service bind and manages nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import ldap
import ldap.modlist

from config import Settings
from directory_ldap import generations
from directory_ldap import layout as tree
from directory_ldap.connection import ConnectionPool, Credentials
from directory_ldap.entry import READ_ATTRIBUTES, DirectoryEntry
from directory_ldap.errors import DirectoryError, ImmutableAttributeError
from directory_ldap.managed import ManagedSlapd, free_port
from directory_ldap.password_policy import ensure_policy
from directory_ldap.queries import (
    LABEL_ATTRIBUTES,
    Labels,
    address_filter,
    search_limited,
    text_filter,
)
from directory_ldap.slapd_config import SlapdLayout

log = logging.getLogger("mssante.directory")

LABELS_TTL = 60.0
"""Seconds the label vocabulary is reused (another process may publish mailboxes)."""


def slapd_layout(settings: Settings) -> SlapdLayout:
    """Files and ports of the managed slapd; ports set to 0 are chosen now."""
    d = settings.directory
    return SlapdLayout(
        root=settings.data_dir / "directory",
        base_dn=d.base_dn,
        host=settings.gateway.listen if settings.gateway.listen != "0.0.0.0" else "127.0.0.1",
        port=d.port or free_port(),
        ldaps_port=d.ldaps_port or free_port(),
        cert_file=settings.tls_cert_file,
        key_file=settings.tls_key_file,
        ca_files=settings.tls_anchor_files,
        sync_writes=d.sync_writes,
    )


class Directory:
    """Publishing and search API of the directory layer (all methods are coroutines)."""

    def __init__(
        self, settings: Settings, *, layout: SlapdLayout | None = None, workers: int = 4
    ) -> None:
        self.settings = settings
        self.base_dn = settings.directory.base_dn
        self.require_in_directory = settings.directory.require_in_directory
        self.managed: ManagedSlapd | None = None
        self.layout: SlapdLayout | None = None
        if settings.directory.url:
            d = settings.directory
            anchors = settings.tls_anchor_files
            creds = Credentials(
                url=d.url,
                bind_dn=d.bind_dn,
                password=d.bind_password,
                sasl_external=bool(d.client_cert_file),
                ca_file=anchors[0] if anchors else None,
                client_cert=settings.path(d.client_cert_file, "") if d.client_cert_file else None,
                client_key=settings.path(d.client_key_file, "") if d.client_key_file else None,
                start_tls=d.url.startswith("ldap://"),
            )
        else:
            self.layout = layout or slapd_layout(settings)
            self.managed = ManagedSlapd(self.layout, settings.directory.slapd_path)
            creds = Credentials(url=self.layout.ldapi_url, sasl_external=True)
        self.pool = ConnectionPool(creds, workers=workers)
        self._labels_cache: tuple[Labels | None] | None = None
        self._labels_generation = ""
        self._labels_at = 0.0

    # -- life cycle ------------------------------------------------------------------
    @property
    def ldap_url(self) -> str:
        return self.layout.ldap_url if self.layout else self.settings.directory.url

    @property
    def ldaps_url(self) -> str:
        return self.layout.ldaps_url if self.layout else self.settings.directory.url

    async def start(self, *, manage: bool = True) -> None:
        """Starts the managed slapd (unless ``manage`` is False: one already runs) and makes
        sure the base and branches exist."""
        if self.managed is not None and manage:
            await self.managed.start()
        await self.pool.run(self._ensure_tree)
        if self.layout is not None:
            # Managed slapd only: an external server's policies are its operator's business.
            await self.pool.run(
                lambda conn: ensure_policy(conn, self.base_dn, self.settings.auth))

    async def stop(self) -> None:
        self.pool.close()
        if self.managed is not None:
            await self.managed.stop()

    def _ensure_tree(self, conn: Any) -> None:
        rdn = self.base_dn.split(",", 1)[0]
        attr, _, value = rdn.partition("=")
        base_entry: dict[str, list[bytes]]
        if attr.lower() == "dc":
            base_entry = {"objectClass": [b"dcObject", b"organization"],
                          "dc": [value.encode()], "o": [value.encode()]}
        elif attr.lower() == "o":
            base_entry = {"objectClass": [b"organization"], "o": [value.encode()]}
        else:
            base_entry = {"objectClass": [b"organizationalUnit"], "ou": [value.encode()]}
        wanted = [(self.base_dn, base_entry)]
        for branch in tree.all_branches():
            wanted.append((tree.branch_dn(self.base_dn, branch),
                           {"objectClass": [b"organizationalUnit"], "ou": [branch.encode()]}))
        for dn, attrs in wanted:
            try:
                conn.add_s(dn, ldap.modlist.addModlist(attrs))
            except ldap.ALREADY_EXISTS:
                pass
            except ldap.INSUFFICIENT_ACCESS:
                log.warning("event=directory_tree_missing dn=%s reason=no_write_access", dn)

    # -- publishing ------------------------------------------------------------------
    async def publish(self, entry: DirectoryEntry) -> str:
        """Adds or updates a local mailbox; returns ``"added"``, ``"updated"`` or ``""``
        (already published as it is: nothing written, nothing logged, so a reconciliation
        logs only what changed). Raises :class:`ImmutableAttributeError` when the address is
        already published with another type."""
        if entry.origin != "local":
            raise DirectoryError("only local mailboxes are published; imports use the importer")
        change = await self.pool.run(lambda conn: self._publish(conn, entry))
        if change:
            self._labels_at = 0.0  # its labels may be new to the search vocabulary
            log.info("event=directory_published address=%s type=%s change=%s",
                     entry.address, entry.type, change)
        return change

    def _find_local(self, conn: Any, address: str) -> tuple[str, dict[str, list[bytes]]] | None:
        flt = f"(&{address_filter(address)}(mssanteOrigin=local))"
        found = search_limited(conn, self.base_dn, flt, ["*"], 2)
        return found[0] if found else None

    def _publish(self, conn: Any, entry: DirectoryEntry) -> str:
        new = entry.to_ldap()
        dn = tree.local_dn(self.base_dn, entry.address, entry.type)
        existing = self._find_local(conn, entry.address)
        if existing is None:
            try:
                conn.add_s(dn, ldap.modlist.addModlist(new))
                return "added"
            except ldap.ALREADY_EXISTS:
                # another node's pass published it a moment ago: compare with that one
                existing = self._find_local(conn, entry.address)
                if existing is None:
                    raise
        old_dn, old = existing
        old_type = DirectoryEntry.from_ldap(old).type
        if old_type != entry.type or ldap.dn.str2dn(old_dn)[0][0][1] != entry.address:
            raise ImmutableAttributeError(
                f"{entry.address} is published as {old_type}; the address and type of a "
                f"published mailbox never change (asked: {entry.address} {entry.type})"
            )
        changes = ldap.modlist.modifyModlist(old, new)
        if changes:
            conn.modify_s(old_dn, changes)
            return "updated"
        return ""

    async def unpublish(self, address: str) -> bool:
        """Removes a local mailbox (suspended or closed account); False if it was not there."""
        def run(conn: Any) -> bool:
            existing = self._find_local(conn, address)
            if existing is None:
                return False
            conn.delete_s(existing[0])
            return True

        removed = await self.pool.run(run)
        if removed:
            log.info("event=directory_unpublished address=%s", address)
        return removed

    # -- reading ---------------------------------------------------------------------
    async def lookup(self, address: str) -> DirectoryEntry | None:
        """The entry of ``address`` (local first, then national), liste rouge included."""
        def run(conn: Any) -> list[tuple[str, dict[str, list[bytes]]]]:
            return search_limited(conn, self.base_dn, address_filter(address),
                                  READ_ATTRIBUTES, 10)

        found = [DirectoryEntry.from_ldap(a) for _dn, a in await self.pool.run(run)]
        found.sort(key=lambda e: e.origin != "local")
        return found[0] if found else None

    async def search(
        self, text: str, limit: int = 50, *, include_liste_rouge: bool = False
    ) -> list[DirectoryEntry]:
        """Entries matching every word of ``text`` ("martin cardio 31"), local ones first."""
        if not text.split():
            return []
        flt = text_filter(text, include_liste_rouge, await self._labels())

        def run(conn: Any) -> list[tuple[str, dict[str, list[bytes]]]]:
            return search_limited(conn, self.base_dn, flt, READ_ATTRIBUTES, limit)

        entries = [DirectoryEntry.from_ldap(a) for _dn, a in await self.pool.run(run)]
        entries.sort(key=lambda e: (e.origin != "local", e.common_name.lower()))
        return entries

    async def _labels(self) -> Labels | None:
        """The label vocabulary (national generation + local mailboxes), cached until the
        generation changes, a mailbox is published, or LABELS_TTL passes; None with an
        external server (which indexes labels by substring, README)."""
        if self.layout is None:
            return None
        generation, national = await asyncio.to_thread(generations.read_labels, self.layout)
        fresh = time.monotonic() - self._labels_at < LABELS_TTL
        if self._labels_cache is not None and fresh and self._labels_generation == generation:
            return self._labels_cache[0]
        if national is None:
            merged: Labels | None = None
        else:
            base = self.base_dn

            def local(conn: Any) -> list[tuple[str, dict[str, list[bytes]]]]:
                return search_limited(conn, base, "(&(objectClass=mssanteMailbox)"
                                      "(mssanteOrigin=local))", list(LABEL_ATTRIBUTES),
                                      1_000_000)

            found = await self.pool.run(local)
            values: dict[str, set[str]] = {a: set(national.get(a, ())) for a in LABEL_ATTRIBUTES}
            for _dn, attrs in found:
                for key, raw in attrs.items():
                    for a in LABEL_ATTRIBUTES:
                        if key.lower() == a.lower():
                            values[a].update(v.decode("utf-8", "replace") for v in raw)
            merged = {a: frozenset(v) for a, v in values.items()}
        self._labels_cache = (merged,)
        self._labels_generation = generation
        self._labels_at = time.monotonic()
        return merged

    async def recipient_known(self, address: str) -> bool:
        """Submission policy "recipient must exist in the directory"; True when it is off."""
        if not self.require_in_directory:
            return True
        return await self.lookup(address) is not None


def ca_file_for_clients(settings: Settings) -> Path | None:
    """The CA file LDAPS clients (ldapsearch, Thunderbird) need to trust the managed slapd."""
    anchors = settings.tls_anchor_files
    return anchors[0] if anchors else None
