"""Generations of the national branch: each import builds a complete MDB database in a new
directory, and one atomic rename of the ``national`` symlink makes it the current one.

``national.d/building-<pid>`` is a generation being built (slapadd); ``national.d/gen-<n>`` a
finished one, with ``manifest.tsv`` (address and row digest of every entry, what the next
import compares against); ``national`` → the current generation. A crash before the rename
leaves the old generation current (the half-built directory is removed by the next import);
after it, the new one. Nothing ever modifies a generation in place except slapd itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from directory_ldap.slapd_config import SlapdLayout

MANIFEST = "manifest.tsv"
LABELS = "labels.json"
"""attribute → the distinct label values of the generation (see queries.word_filter)."""
_GEN = re.compile(r"^gen-(\d+)$")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def current(layout: SlapdLayout) -> Path | None:
    """The directory of the current generation, or None before the first start."""
    link = layout.national_link
    if not link.is_symlink():
        return None
    return (link.parent / os.readlink(link)).resolve()


def ensure_current(layout: SlapdLayout) -> Path:
    """Makes sure ``national`` points to a generation (an empty one on a new data dir)."""
    found = current(layout)
    if found is not None and found.is_dir():
        return found
    empty = layout.generations_dir / "gen-0"
    empty.mkdir(mode=0o700, parents=True, exist_ok=True)
    switch_to(layout, empty)
    return empty


def new_building_dir(layout: SlapdLayout) -> Path:
    """A fresh, empty directory for a generation being built by this process."""
    path = layout.generations_dir / f"building-{os.getpid()}"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(mode=0o700, parents=True)
    return path


def finish(layout: SlapdLayout, building: Path) -> Path:
    """Durably seals a built generation under the next ``gen-<n>`` name (not yet current)."""
    for f in building.iterdir():
        if f.name == "load.ldif":
            f.unlink()  # what slapadd read; only the database and manifest are kept
            continue
        with f.open("rb+") as fh:
            os.fsync(fh.fileno())
    numbers = [int(m.group(1)) for p in layout.generations_dir.iterdir()
               if (m := _GEN.match(p.name))]
    final = layout.generations_dir / f"gen-{max(numbers, default=0) + 1}"
    building.rename(final)
    _fsync_dir(layout.generations_dir)
    return final


def switch_to(layout: SlapdLayout, generation: Path) -> None:
    """The commit point of an import: one rename(2) replaces the symlink atomically."""
    tmp = layout.national_link.with_name("national.next")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    tmp.symlink_to(os.path.relpath(generation, layout.root))
    tmp.replace(layout.national_link)
    _fsync_dir(layout.root)


def remove_stale(layout: SlapdLayout) -> list[Path]:
    """Deletes every generation that is not current: older ones and interrupted builds."""
    keep = current(layout)
    removed: list[Path] = []
    if not layout.generations_dir.is_dir():
        return removed
    for path in layout.generations_dir.iterdir():
        if path.resolve() == keep:
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:  # a build's private slapadd configuration and log
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def read_manifest(generation: Path) -> dict[str, tuple[str, str]] | None:
    """lower-case address → (address, row digest); None if the generation has no manifest."""
    path = generation / MANIFEST
    if not path.exists():
        return None
    out: dict[str, tuple[str, str]] = {}
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            address, _, digest = line.rstrip("\n").partition("\t")
            out[address.lower()] = (address, digest)
    return out


def write_manifest(building: Path, rows: Iterable[tuple[str, str]]) -> None:
    with (building / MANIFEST).open("w", encoding="utf-8") as fh:
        fh.writelines(f"{address}\t{digest}\n" for address, digest in rows)


def write_labels(building: Path, labels: dict[str, set[str]]) -> None:
    (building / LABELS).write_text(
        json.dumps({a: sorted(v) for a, v in labels.items()}, ensure_ascii=False),
        encoding="utf-8")


def read_labels(layout: SlapdLayout) -> tuple[str, dict[str, frozenset[str]] | None]:
    """(current generation name, its label vocabulary or None when it has none: a generation
    written through LDAP, whose labels only slapd knows)."""
    gen = current(layout)
    if gen is None:
        return "", None
    try:
        data = json.loads((gen / LABELS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return gen.name, None
    return gen.name, {a: frozenset(v) for a, v in data.items()}
