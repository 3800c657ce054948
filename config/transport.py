"""``[transport]`` entries: where mail for a domain goes, and which name its certificate carries.

An entry is ``"host:port"`` (``[ipv6]:port``, or ``host`` for port 25), optionally followed
by ``name=NAME``: the name the peer's certificate must carry. Without it the name is the
host, except when the host is an IP address: an address is not what an operator's
certificate names, so the certificate is then checked against the destination domain —
what Postfix's ``smtp_tls_verify_cert_match`` does with its ``nexthop`` default.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

DEFAULT_PORT = 25
_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$")


@dataclass(frozen=True)
class TransportTarget:
    """One parsed entry; ``name`` is None when the entry gives none."""

    host: str
    port: int
    name: str | None = None

    @property
    def host_is_address(self) -> bool:
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return True

    def certificate_name(self, domain: str) -> str:
        """The name the peer certificate must carry when delivering mail for ``domain``."""
        if self.name:
            return self.name
        return domain if self.host_is_address else self.host


def parse_transport(value: str) -> TransportTarget:
    """Parses one entry; raises ValueError naming the entry and what is expected."""
    text = value.strip()
    target, _, rest = text.partition(" ")
    name: str | None = None
    rest = rest.strip()
    if rest:
        key, sep, name_value = rest.partition("=")
        if key != "name" or not sep or not _NAME.match(name_value):
            raise ValueError(f"transport {value!r}: after host:port only name=HOST may follow")
        name = name_value.lower()
    if target.startswith("["):
        host, _, after = target[1:].partition("]")
        if after and not after.startswith(":"):
            raise ValueError(f"transport {value!r}: expected [address]:port")
        port_text = after[1:]
    elif target.count(":") == 1:
        host, _, port_text = target.partition(":")
    else:
        host, port_text = target, ""
    if not host:
        raise ValueError(f"transport {value!r}: expected host:port")
    if not port_text:
        return TransportTarget(host, DEFAULT_PORT, name)
    if not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) < 65536:
        raise ValueError(f"transport {value!r}: port must be a number from 1 to 65535")
    return TransportTarget(host, int(port_text), name)
