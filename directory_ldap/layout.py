"""Names of the directory tree: one base, branches per mailbox type, one for the national extract.

Local mailboxes of this operator and imported national entries are told apart by branch
(``ou=national`` holds the extract) and by the ``mssanteOrigin`` attribute, so that a re-import
can never touch a locally published mailbox.
"""

from __future__ import annotations

from ldap.dn import escape_dn_chars

MAILBOX_TYPES = ("PER", "ORG", "APP")
BRANCH_BY_TYPE = {"PER": "people", "ORG": "organisations", "APP": "applications"}
NATIONAL_BRANCH = "national"
SERVICE_RDN = "cn=gateway"


def branch_dn(base: str, branch: str) -> str:
    return f"ou={branch},{base}"


def _rdn(address: str) -> str:
    """``mail=`` for ASCII addresses; ``mssanteMailUTF8=`` for internationalised ones, which
    the ASCII-only mail attribute cannot name (directory_ldap/addresses.py)."""
    attr = "mail" if address.isascii() else "mssanteMailUTF8"
    return f"{attr}={escape_dn_chars(address)}"


def local_dn(base: str, address: str, mailbox_type: str) -> str:
    """DN a local mailbox is published under; also the DN its owner binds with."""
    return f"{_rdn(address)},{branch_dn(base, BRANCH_BY_TYPE[mailbox_type])}"


def national_dn(base: str, address: str) -> str:
    return f"{_rdn(address)},{branch_dn(base, NATIONAL_BRANCH)}"


def service_dn(base: str) -> str:
    """The gateway's service identity: the only writer, the only reader of liste rouge."""
    return f"{SERVICE_RDN},{base}"


def all_branches() -> tuple[str, ...]:
    return (*BRANCH_BY_TYPE.values(), NATIONAL_BRANCH)
