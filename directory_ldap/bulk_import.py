"""Import of the national extract into the managed slapd: a new generation, switched at once.

Writing a million entries through LDAP costs slapd a transaction and every index key per
entry; ``slapadd -q`` builds the same database offline, many times faster, while slapd keeps
serving the previous generation. The steps:

1. stream the file: every readable row becomes an LDIF record and a manifest line, and is
   compared with the current generation's manifest (added, updated, unchanged; what is left
   over is deleted); nothing changed → nothing is rebuilt (idempotent re-import);
2. ``slapadd -q`` loads the LDIF into ``national.d/building-<pid>``, then the files are
   fsynced and the directory renamed ``gen-<n>``;
3. the ``national`` symlink is replaced by one rename (the commit point) and slapd is
   restarted through its watcher (well under a second without the directory);
4. older generations and interrupted builds are removed.

A crash before step 3 leaves the old data in place, after it the new: never a mix.
Local mailboxes live in the other database and are never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Protocol

import ldap.dn

from directory_ldap import generations, ldif, slapd_config
from directory_ldap import layout as tree
from directory_ldap.errors import DirectoryError
from directory_ldap.extract import BadRow, ParsedRow
from directory_ldap.import_summary import ImportSummary, Progress
from directory_ldap.managed import ManagedSlapd, request_restart
from directory_ldap.online_import import national_digests
from directory_ldap.service import Directory
from directory_ldap.slapd_config import SlapdLayout

log = logging.getLogger("mssante.directory.import")

PROGRESS_EVERY = 10_000


class ColumnReport(Protocol):
    """What the file reader says about the file (an ExtractReader or a parsed Extract)."""

    bad: list[BadRow]
    used_columns: list[str]
    ignored_columns: list[str]
    missing_columns: list[str]

LDIF_NAME = "load.ldif"


class _Loader:
    """Where the LDIF goes: a file until the first difference is seen, then a running
    ``slapadd`` (the file first, then every further record through its stdin), so that
    Python reading the extract and slapd's tool indexing run on two cores at once, and an
    unchanged extract never starts slapadd at all. Blocking: used from a worker thread."""

    def __init__(self, command: list[str], building: Path) -> None:
        self.command = command
        self.building = building
        self.file_path = building / LDIF_NAME
        self.out: IO[bytes] = self.file_path.open("wb", buffering=1 << 20)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = building.parent / f"{building.name}.slapadd.log"

    def write(self, text: str) -> None:
        try:
            self.out.write(text.encode("ascii"))
        except BrokenPipeError:
            self._failed()

    def go_live(self) -> None:
        """Starts slapadd on what was written so far and streams the rest to it."""
        if self.proc is not None:
            return
        self.out.close()
        with self.log_path.open("wb") as log_fh:
            self.proc = subprocess.Popen(
                [*self.command], stdin=subprocess.PIPE, stdout=log_fh, stderr=log_fh,
            )
        assert self.proc.stdin is not None
        self.out = self.proc.stdin
        try:
            with self.file_path.open("rb") as fh:
                shutil.copyfileobj(fh, self.out, 1 << 20)
        except BrokenPipeError:
            self._failed()
        self.file_path.unlink()

    def finish(self) -> None:
        """Ends the load; raises DirectoryError when slapadd refused it."""
        self.go_live()
        assert self.proc is not None
        try:
            self.out.close()
        except BrokenPipeError:
            pass
        if self.proc.wait() != 0:
            self._failed()
        self.log_path.unlink(missing_ok=True)

    def abort(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        with contextlib.suppress(OSError):
            self.out.close()
        self.log_path.unlink(missing_ok=True)

    def _failed(self) -> None:
        code = self.proc.wait() if self.proc is not None else None
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            lines = []
        raise DirectoryError(
            f"slapadd could not load the new national generation (exit {code}): "
            f"{' | '.join(lines[-3:])}; the directory still serves the previous data"
        )


def _load(
    base: str, rows: Iterable[ParsedRow], loader: _Loader,
    previous: dict[str, tuple[str, str]], summary: ImportSummary,
    progress: Progress | None,
) -> None:
    """Writes the LDIF and the manifest of the new generation and counts the differences
    (blocking: runs in a worker thread)."""
    seen: set[str] = set()
    labels: dict[str, set[str]] = {"mssanteSpecialtyLabel": set(),
                                   "mssanteProfessionLabel": set()}
    with (loader.building / generations.MANIFEST).open(
            "w", encoding="utf-8", buffering=1 << 20) as manifest:
        loader.write(ldif.national_root(base))
        for parsed in rows:
            entry = parsed.entry
            low = entry.address.lower()
            seen.add(low)
            had = previous.get(low)
            if had is None:
                summary.added += 1
                loader.go_live()
            elif had[1] != parsed.row_hash:
                summary.updated += 1
                loader.go_live()
            else:
                summary.unchanged += 1
            loader.write(ldif.record(tree.national_dn(base, entry.address),
                                     entry.to_ldap(row_hash=parsed.row_hash)))
            manifest.write(f"{entry.address}\t{parsed.row_hash}\n")
            if entry.specialty_label:
                labels["mssanteSpecialtyLabel"].add(entry.specialty_label)
            if entry.profession_label:
                labels["mssanteProfessionLabel"].add(entry.profession_label)
            summary.rows += 1
            if progress is not None and summary.rows % PROGRESS_EVERY == 0:
                progress(summary.rows, 0)
    generations.write_labels(loader.building, labels)
    for low, (address, _digest) in previous.items():
        if low not in seen:
            summary.note_deleted(address)
    if summary.changed:
        loader.finish()


async def _previous(directory: Directory, layout: SlapdLayout) -> dict[str, tuple[str, str]]:
    """What the current generation holds: its manifest, else (a generation written through
    LDAP, e.g. the empty first one) what slapd answers."""
    current = await asyncio.to_thread(generations.current, layout)
    if current is not None:
        found = await asyncio.to_thread(generations.read_manifest, current)
        if found is not None:
            return found
    base = directory.base_dn
    digests = await directory.pool.run(lambda conn: national_digests(base, conn))
    return {low: (ldap.dn.str2dn(dn)[0][0][1], digest) for low, (dn, digest) in digests.items()}


def _slapadd_command(directory: Directory, layout: SlapdLayout, building: Path) -> list[str]:
    """slapadd in quick mode (RFC 2849 LDIF on stdin) into ``building``, with a private
    configuration naming that directory for the national database."""
    conf = building.parent / f"{building.name}.conf"
    conf.write_text(slapd_config.render(layout, national_dir=building), encoding="utf-8")
    conf.chmod(0o600)
    slapadd = Path(directory.settings.directory.slapd_path).with_name("slapadd")
    return [str(slapadd), "-q", "-f", str(conf),
            "-b", tree.branch_dn(directory.base_dn, tree.NATIONAL_BRANCH)]


async def _restart(directory: Directory, layout: SlapdLayout) -> None:
    """Makes slapd open the new generation: through the watcher of whichever process owns
    it, or by starting it here when none runs or nobody owns it."""
    if await request_restart(layout):
        return
    if directory.managed is None:
        directory.managed = ManagedSlapd(layout, directory.settings.directory.slapd_path)
    pid = directory.managed.pid
    if pid is not None:  # ours but without a watcher answer: stop and start it cleanly
        await directory.managed.stop()
        directory.managed = ManagedSlapd(layout, directory.settings.directory.slapd_path)
    await directory.managed.start()


async def import_generation(
    directory: Directory, path: Path, reader: ColumnReport,
    rows: Iterable[ParsedRow], progress: Progress | None = None,
) -> ImportSummary:
    """Imports the rows of ``reader`` (already opened on ``path``) as a new generation."""
    layout = directory.layout
    if layout is None:
        raise DirectoryError("a generation import needs the managed slapd")
    lock = await asyncio.to_thread(_lock, layout)
    try:
        return await _import_locked(directory, layout, path, reader, rows, progress)
    finally:
        lock.close()  # closing the descriptor releases the flock


def _lock(layout: SlapdLayout) -> IO[str]:
    """One import at a time per data dir (each cleans up the others' unfinished builds)."""
    layout.root.mkdir(parents=True, exist_ok=True)
    fh = (layout.root / "import.lock").open("a+", encoding="ascii")
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        holder = fh.read().strip() or "another process"
        fh.close()
        raise DirectoryError(
            f"another import of the national extract is running (pid {holder}); wait for it "
            "to finish, then run this one again"
        ) from None
    fh.truncate(0)
    fh.write(str(os.getpid()))
    fh.flush()
    return fh


async def _import_locked(
    directory: Directory, layout: SlapdLayout, path: Path, reader: ColumnReport,
    rows: Iterable[ParsedRow], progress: Progress | None,
) -> ImportSummary:
    started = time.monotonic()
    summary = ImportSummary(
        file=str(path), bad=reader.bad, used_columns=reader.used_columns,
        ignored_columns=reader.ignored_columns, missing_columns=reader.missing_columns,
    )
    stale = await asyncio.to_thread(generations.remove_stale, layout)
    summary.resumed = any(p.name.startswith("building-") for p in stale)
    if summary.resumed:
        log.warning("event=directory_import_interrupted_build_removed dirs=%d", len(stale))
    previous = await _previous(directory, layout)
    building = await asyncio.to_thread(generations.new_building_dir, layout)
    loop = asyncio.get_running_loop()

    def threadsafe(done: int, total: int) -> None:
        if progress is not None:
            loop.call_soon_threadsafe(progress, done, total)

    command = await asyncio.to_thread(_slapadd_command, directory, layout, building)
    loader = await asyncio.to_thread(_Loader, command, building)
    try:
        try:
            await asyncio.to_thread(_load, directory.base_dn, rows, loader, previous,
                                    summary, threadsafe)
        finally:
            await asyncio.to_thread(loader.abort)
            await asyncio.to_thread(Path(command[3]).unlink, True)
        summary.note_addresses(reader)
        current = await asyncio.to_thread(generations.current, layout)
        summary.generation = current.name if current else ""
        if summary.changed:
            final = await asyncio.to_thread(generations.finish, layout, building)
            await asyncio.to_thread(generations.switch_to, layout, final)
            summary.generation = final.name
            await _restart(directory, layout)
    finally:
        if building.exists():
            await asyncio.to_thread(shutil.rmtree, building, True)
    with contextlib.suppress(OSError):
        await asyncio.to_thread(generations.remove_stale, layout)
    if progress is not None:
        progress(summary.rows, summary.rows)
    summary.seconds = time.monotonic() - started
    log.info(
        "event=directory_import mode=generation file=%s generation=%s rows=%d added=%d "
        "updated=%d deleted=%d unchanged=%d bad=%d seconds=%.1f", path, summary.generation,
        summary.rows, summary.added, summary.updated, summary.deleted, summary.unchanged,
        len(summary.bad), summary.seconds,
    )
    return summary
