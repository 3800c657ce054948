"""LDIF (RFC 2849) text of directory entries, for loading a national generation with slapadd."""

from __future__ import annotations

import base64

from directory_ldap.layout import NATIONAL_BRANCH, branch_dn

_UNSAFE_START = frozenset(b" :<")


def _safe(value: bytes) -> bool:
    """RFC 2849 SAFE-STRING: ASCII without NUL/LF/CR, not starting with space, ':' or '<';
    a trailing space would be lost by parsers, so it is encoded too."""
    return (
        bool(value) and value.isascii() and value[0] not in _UNSAFE_START
        and b"\n" not in value and b"\r" not in value and b"\0" not in value
        and not value.endswith(b" ")
    )


def line(attr: str, value: bytes) -> str:
    if _safe(value):
        return f"{attr}: {value.decode('ascii')}\n"
    return f"{attr}:: {base64.b64encode(value).decode('ascii')}\n"


def record(dn: str, attrs: dict[str, list[bytes]]) -> str:
    """One entry: ``dn`` line, then every value of every attribute, then a blank line."""
    parts = [line("dn", dn.encode())]
    for attr, values in attrs.items():
        parts.extend(line(attr, v) for v in values)
    parts.append("\n")
    return "".join(parts)


def national_root(base: str) -> str:
    """The suffix entry of the national database: the first record of every generation."""
    return record(branch_dn(base, NATIONAL_BRANCH), {
        "objectClass": [b"organizationalUnit"], "ou": [NATIONAL_BRANCH.encode()],
    })
