"""Idempotent import of the national extract into ``ou=national``: the entry point.

With the managed slapd an import builds a complete new generation and switches to it at once
(:mod:`directory_ldap.bulk_import`: old data or new, never a mix). With an external server,
which the gateway cannot stop or load offline, it applies the differences over LDAP
(:mod:`directory_ldap.online_import`: a journal marks an interrupted run, and running the
import again completes it). Either way: adds, updates and deletes against the previous
import, bad rows listed and skipped, local mailboxes never touched.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from directory_ldap.bulk_import import import_generation
from directory_ldap.extract import Extract, ExtractReader, read_extract
from directory_ldap.import_summary import DELETED_LISTED, ImportSummary, Progress
from directory_ldap.online_import import import_online, journal_path
from directory_ldap.service import Directory

__all__ = ["DELETED_LISTED", "ImportSummary", "Progress", "import_extract", "journal_path"]


async def import_extract(
    directory: Directory, path: Path, progress: Progress | None = None,
    parsed: Extract | None = None, *, online: bool = False,
) -> ImportSummary:
    """Imports ``path`` into the national branch; raises ExtractError for unusable files.
    ``parsed`` skips reading the file again when the caller already did; ``online`` forces
    the LDAP path even with the managed slapd (what an external server always gets)."""
    if directory.layout is None or online:
        extract = parsed if parsed is not None else await asyncio.to_thread(read_extract, path)
        return await import_online(directory, path, extract, progress)
    if parsed is not None:
        return await import_generation(directory, path, parsed, parsed.rows.values(), progress)
    reader = await asyncio.to_thread(ExtractReader, path)
    return await import_generation(directory, path, reader, reader.rows(), progress)
