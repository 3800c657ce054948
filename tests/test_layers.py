"""The layer rule of DESIGN.md §2, checked on every import of every package: a package
imports only from the packages above it, and the front-ends never import each other (the
webmail reads through ``mailstore/``, not through ``imap/``)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BASE = ("config", "storage", "trustspace", "directory_ldap", "accounts", "mail")
ALLOWED: dict[str, set[str]] = {
    "config": set(),
    "storage": {"config"},
    "trustspace": {"config"},
    "directory_ldap": {"config"},
    "accounts": {"config", "storage", "directory_ldap", "trustspace"},
    "mail": {"config", "storage", "trustspace", "directory_ldap", "accounts"},
    "mailstore": set(BASE),
    "smtp": set(BASE),
    "imap": {*BASE, "mailstore"},
    "web": {*BASE, "mailstore"},
}
OURS = {*ALLOWED, "gateway"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & OURS


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_from_above(package: str) -> None:
    wrong = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for target in sorted(_imports(path) - ALLOWED[package] - {package}):
            wrong.append(f"{path.relative_to(ROOT)} imports {target}")
    assert not wrong, "\n".join(wrong)
