"""Signed checkpoints copied outside the database, in an append-only directory.

Why: a checkpoint kept only in the database it protects can be deleted together with the
records it covers. Each checkpoint is also written as its own file, created exclusively
(never overwritten, mode 0600, flushed to disk), named ``<tree size, 20 digits>-<first 16
hex digits of the root>.note`` so that files sort by size and two different roots for one
size (a fork) can never hide each other. Put the directory on another disk, or sync it to
another machine: the database alone can then no longer be rolled back unnoticed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from storage import notes


@dataclass(frozen=True)
class CheckpointFile:
    path: Path
    checkpoint: notes.Checkpoint | None
    error: str | None = None


def file_name(size: int, root: bytes) -> str:
    return f"{size:020d}-{root.hex()[:16]}.note"


def write(directory: Path, note: str) -> Path:
    """Writes ``note`` as a new file (an identical existing file is left as it is)."""
    cp = notes.parse(note)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / file_name(cp.size, cp.root)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if path.read_text(encoding="utf-8") == note:
            return path
        # Same size and root, other signature (another key): keep both, never overwrite.
        n = 1
        while True:
            other = path.with_name(f"{path.stem}.{n}.note")
            try:
                fd = os.open(other, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                path = other
                break
            except FileExistsError:
                if other.read_text(encoding="utf-8") == note:
                    return other
                n += 1
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(note)
        fh.flush()
        os.fsync(fh.fileno())
    dfd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
    return path


def read_all(directory: Path) -> list[CheckpointFile]:
    """Every checkpoint file of ``directory``, smallest tree first (unparsable ones too)."""
    if not directory.is_dir():
        return []
    out: list[CheckpointFile] = []
    for path in sorted(directory.glob("*.note")):
        try:
            out.append(CheckpointFile(path, notes.parse(path.read_text(encoding="utf-8"))))
        except (OSError, UnicodeDecodeError, notes.NoteError) as exc:
            out.append(CheckpointFile(path, None, str(exc)))
    return out
