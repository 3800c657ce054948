"""Mailbox addresses as the directory stores them, internationalised ones included.

The gateway advertises SMTPUTF8, and the national extract may list internationalised
addresses (RFC 6531): a UTF-8 local part, an internationalised domain name, or both. LDAP's
``mail`` attribute is an IA5String (RFC 4524, ASCII only; slapd refuses anything else), so:

- an address whose local part is ASCII has an ASCII form (the domain as A-labels, IDNA 2008 /
  UTS 46): that form goes in ``mail``, where every address book reads it;
- the address as written goes in ``mssanteMailUTF8`` (UTF-8 Directory String) whenever it
  is not ASCII; it is what the gateway reads back, looks up and names entries by;
- a UTF-8 local part has no ASCII equivalent (RFC 6530 defines no downgrade), so such an
  entry has no ``mail`` at all: clients that read only ``mail`` show no address for it. The
  import report counts them.
"""

from __future__ import annotations

import re
import unicodedata

import idna

# RFC 5321 §4.5.3.1 (64 octets local part, 254 for the path), RFC 6531 §3.3 (UTF-8 allowed
# in atext): a pragmatic shape check, as before for ASCII addresses.
_ASCII_LOCAL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+$")
_ASCII_DOMAIN = re.compile(r"^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")


def _local_ok(local: str) -> bool:
    if not local or len(local.encode("utf-8")) > 64:
        return False
    for c in local:
        if c.isascii():
            if not _ASCII_LOCAL.match(c):
                return False
        elif unicodedata.category(c)[0] in "CZ":  # controls, spaces, separators
            return False
    return True


def ascii_domain(domain: str) -> str | None:
    """The domain in ASCII (A-labels for internationalised labels), or None if invalid."""
    if domain.isascii():
        return domain if _ASCII_DOMAIN.match(domain) else None
    try:
        encoded = idna.encode(domain, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        return None
    return encoded if _ASCII_DOMAIN.match(encoded) else None


def valid_address(address: str) -> bool:
    """An ASCII or internationalised (RFC 6531) mailbox address of a plausible shape."""
    local, sep, domain = address.rpartition("@")
    if not sep or len(address.encode("utf-8")) > 254 or not _local_ok(local):
        return False
    return ascii_domain(domain) is not None


def ascii_address(address: str) -> str | None:
    """The address in ASCII (domain as A-labels) for LDAP ``mail``; None when the local part
    is not ASCII (no equivalent exists) or the address is not valid."""
    if address.isascii():
        return address
    local, sep, domain = address.rpartition("@")
    if not sep or not local.isascii():
        return None
    domain_ascii = ascii_domain(domain)
    return f"{local}@{domain_ascii}" if domain_ascii else None


def is_internationalised(address: str) -> bool:
    return not address.isascii()
