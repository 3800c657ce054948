"""The managed directory as LDIF for a backup (``slapcat``), and back (``slapadd``).

Both work on the MDB files directly through the managed ``slapd.conf``: ``slapcat`` reads a
consistent MDB snapshot while slapd keeps serving (MDB readers never block the writer), and
``slapadd`` loads a restored data directory before its slapd ever starts. Each database (the
national branch, this operator's tree) is dumped on its own (``-g``: without its glued
subordinate) so each goes back into the same database.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from directory_ldap import generations, slapd_config
from directory_ldap.layout import NATIONAL_BRANCH, branch_dn
from directory_ldap.slapd_config import SlapdLayout

GENERATION_FILES = (generations.MANIFEST, generations.LABELS)
"""Side files of the national generation the importer reads; kept with the LDIF."""


class DumpError(Exception):
    """slapcat or slapadd failed; the message carries its own explanation."""


@dataclass(frozen=True)
class DumpedDatabase:
    """One database of the managed slapd and its LDIF file name in a backup."""

    suffix: str
    ldif_name: str


def databases(layout: SlapdLayout) -> list[DumpedDatabase]:
    """The national branch first, then the operator's tree (slapd.conf order)."""
    return [
        DumpedDatabase(branch_dn(layout.base_dn, NATIONAL_BRANCH), "directory-national.ldif"),
        DumpedDatabase(layout.base_dn, "directory-local.ldif"),
    ]


def _tool(slapd_path: str, name: str) -> str:
    return str(Path(slapd_path).with_name(name))


def _run(command: list[str], what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        detail = " ".join(done.stderr.split())[-400:]
        raise DumpError(f"{what} failed (exit {done.returncode}): {detail}")


def dump(layout: SlapdLayout, slapd_path: str, dest_dir: Path) -> list[Path]:
    """Writes one LDIF per database (0600) and the generation side files into ``dest_dir``.

    Returns the files written. Nothing is written when the managed slapd never ran here
    (no slapd.conf): there is no directory to save.
    """
    if not layout.conf_file.exists():
        return []
    written: list[Path] = []
    for db in databases(layout):
        out = dest_dir / db.ldif_name
        os.close(os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        _run([_tool(slapd_path, "slapcat"), "-g", "-f", str(layout.conf_file),
              "-b", db.suffix, "-l", str(out)], f"slapcat of {db.suffix}")
        os.chmod(out, 0o600)
        written.append(out)
    current = generations.current(layout)
    for name in GENERATION_FILES:
        if current is not None and (current / name).is_file():
            out = dest_dir / f"national-{name}"
            shutil.copyfile(current / name, out)
            os.chmod(out, 0o600)
            written.append(out)
    return written


def load(layout: SlapdLayout, slapd_path: str, src_dir: Path) -> int:
    """Writes the managed configuration and loads each LDIF of ``src_dir`` with slapadd.

    For a data directory whose slapd has never started (a restore): the databases must be
    empty. Returns how many LDIF files were loaded.
    """
    if not any((src_dir / db.ldif_name).is_file() for db in databases(layout)):
        return 0
    slapd_config.write(layout)
    loaded = 0
    current = generations.current(layout)
    for db in databases(layout):
        ldif = src_dir / db.ldif_name
        if not ldif.is_file() or ldif.stat().st_size == 0:
            continue
        _run([_tool(slapd_path, "slapadd"), "-q", "-f", str(layout.conf_file),
              "-b", db.suffix, "-l", str(ldif)], f"slapadd of {db.suffix}")
        loaded += 1
    for name in GENERATION_FILES:
        side = src_dir / f"national-{name}"
        if current is not None and side.is_file():
            shutil.copyfile(side, current / name)
    return loaded
