"""What the directory publishes about a mailbox, and its mapping to LDAP attributes.

inetOrgPerson (RFC 2798) carries names and the postal address; our auxiliary class
``mssanteMailbox`` (mssante.schema) carries the MSSanté identifiers.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from directory_ldap.addresses import ascii_address, valid_address
from directory_ldap.folding import add_folded
from directory_ldap.layout import MAILBOX_TYPES

# DirectoryEntry field → LDAP attribute (single-valued text attributes).
TEXT_ATTRIBUTES: dict[str, str] = {
    "display_name": "displayName",
    "given_name": "givenName",
    "surname": "sn",
    "idnat": "mssanteIdNat",
    "rpps": "mssanteRPPS",
    "adeli": "mssanteADELI",
    "profession_code": "mssanteProfessionCode",
    "profession_label": "mssanteProfessionLabel",
    "specialty_code": "mssanteSpecialtyCode",
    "specialty_label": "mssanteSpecialtyLabel",
    "structure_id": "mssanteStructureId",
    "structure_name": "mssanteStructureName",
    "service": "ou",
    "title": "title",
    "telephone": "telephoneNumber",
    "street": "street",
    "postal_code": "postalCode",
    "city": "l",
    "department": "st",
}

__all__ = ["READ_ATTRIBUTES", "TEXT_ATTRIBUTES", "DirectoryEntry", "valid_address"]

READ_ATTRIBUTES = [
    "mail", "mssanteMailUTF8", "cn", "mssanteMailboxType", "mssanteOrigin", "mssanteListeRouge",
    "mssantePreferredRank", "o", *TEXT_ATTRIBUTES.values(),
]


@dataclass(frozen=True)
class DirectoryEntry:
    """A published mailbox. ``address`` and ``type`` never change once published.

    ``password_hashes`` are argon2id encoded hashes (``$argon2id$v=19$m=…``) of the owner's
    application passwords; they let the owner bind to the directory and are never read back.
    """

    address: str
    type: str = "PER"
    display_name: str = ""
    given_name: str = ""
    surname: str = ""
    idnat: str = ""
    rpps: str = ""
    adeli: str = ""
    profession_code: str = ""
    profession_label: str = ""
    specialty_code: str = ""
    specialty_label: str = ""
    structure_id: str = ""
    structure_name: str = ""
    service: str = ""
    title: str = ""
    telephone: str = ""
    street: str = ""
    postal_code: str = ""
    city: str = ""
    department: str = ""
    liste_rouge: bool = False
    preferred_rank: int = 0
    origin: str = "local"
    password_hashes: tuple[str, ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        if not valid_address(self.address):
            raise ValueError(f"invalid mailbox address {self.address!r}")
        if self.type not in MAILBOX_TYPES:
            raise ValueError(
                f"invalid mailbox type {self.type!r}; one of {', '.join(MAILBOX_TYPES)}"
            )
        for h in self.password_hashes:
            if not h.startswith("$argon2"):
                raise ValueError("password hashes must be argon2 encoded hashes ($argon2id$…)")

    @property
    def common_name(self) -> str:
        """cn: what address books show first (person name, else structure, else address)."""
        person = " ".join(p for p in (self.given_name, self.surname) if p)
        return self.display_name or person or self.structure_name or self.address

    def to_ldap(self, row_hash: str = "") -> dict[str, list[bytes]]:
        """The entry's attributes, ready for python-ldap (empty values left out)."""
        attrs: dict[str, list[bytes]] = {
            "objectClass": [b"inetOrgPerson", b"mssanteMailbox"],
            "cn": [self.common_name.encode()],
            # person (RFC 4519) requires sn; organisations and applications have none.
            "sn": [(self.surname or self.structure_name or self.address).encode()],
            "mssanteMailboxType": [self.type.encode()],
            "mssanteOrigin": [self.origin.encode()],
        }
        # mail is ASCII only (IA5String): an internationalised address keeps its UTF-8 form
        # in mssanteMailUTF8, and its ASCII form, when it has one, in mail (addresses.py).
        mail = ascii_address(self.address)
        if mail:
            attrs["mail"] = [mail.encode()]
        if not self.address.isascii():
            attrs["mssanteMailUTF8"] = [self.address.encode()]
        for name, attr in TEXT_ATTRIBUTES.items():
            value = getattr(self, name)
            if value and attr != "sn":
                attrs[attr] = [value.encode()]
        if self.structure_name:
            attrs["o"] = [self.structure_name.encode()]
        if self.liste_rouge:
            attrs["mssanteListeRouge"] = [b"TRUE"]
        if self.preferred_rank:
            attrs["mssantePreferredRank"] = [str(self.preferred_rank).encode()]
        add_folded(attrs)  # accent-free copies: LDAP clients find "Étienne" with "etienne"
        if self.password_hashes:
            # slapd's argon2 module verifies {ARGON2} values (slappw-argon2).
            attrs["userPassword"] = [b"{ARGON2}" + h.encode() for h in self.password_hashes]
        if row_hash:
            attrs["mssanteRowHash"] = [row_hash.encode()]
        return attrs

    @classmethod
    def from_ldap(cls, attrs: dict[str, list[bytes]]) -> DirectoryEntry:
        """Rebuilds an entry from a search result (password hashes are never read back)."""
        def one(attr: str) -> str:
            for key, values in attrs.items():
                if key.lower() == attr.lower() and values:
                    return values[0].decode("utf-8", "replace")
            return ""

        kwargs: dict[str, Any] = {name: one(attr) for name, attr in TEXT_ATTRIBUTES.items()}
        if not one("displayName"):
            kwargs["display_name"] = one("cn")
        if not kwargs["structure_name"]:
            kwargs["structure_name"] = one("o")
        rank = one("mssantePreferredRank")
        return cls(
            address=one("mssanteMailUTF8") or one("mail"),
            type=one("mssanteMailboxType").upper() or "PER",
            liste_rouge=one("mssanteListeRouge").upper() == "TRUE",
            preferred_rank=int(rank) if rank.isascii() and rank.isdigit() else 0,
            origin=one("mssanteOrigin") or "local",
            **kwargs,
        )


FIELD_NAMES = tuple(f.name for f in fields(DirectoryEntry))
