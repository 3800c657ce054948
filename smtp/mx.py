"""Where to deliver mail for a domain: the ``[transport]`` override, else the DNS MX records.

The override comes first, like Postfix's transport map: private networks and tests name the
next hop explicitly (``domain = "host:port"``). Otherwise the MX records decide, lowest
preference first (RFC 5321 §5.1), ties in random order so that equal MX hosts share the load;
a domain without MX records is its own mail host (the "implicit MX", RFC 5321 §5.1), and a
"null MX" (a single MX of preference 0 and host ".") says the domain takes no mail at all
(RFC 7505 §3), which is a permanent failure (5.1.10), never a retry.

Names are handled as IDNA A-labels, because DNS and certificate names are ASCII
(RFC 5890 §2.3.2.1); the host name returned is the one the peer certificate must match.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver

from config.transport import parse_transport
from trustspace.whitelist import InvalidDomain, normalise_domain

SMTP_PORT = 25


@dataclass(frozen=True)
class Destination:
    """One host to try: ``host`` is also the name the peer certificate must carry."""

    host: str
    port: int
    preference: int = 0
    from_transport: bool = False
    tls_name: str = ""
    """The name the peer certificate must carry (the host unless a transport entry says)."""

    @property
    def certificate_name(self) -> str:
        return self.tls_name or self.host


class ResolutionError(Exception):
    """No destination could be found; ``permanent`` decides bounce (5.x) or retry (4.x)."""

    def __init__(self, text: str, *, permanent: bool, enhanced: str) -> None:
        super().__init__(text)
        self.text = text
        self.permanent = permanent
        self.enhanced = enhanced


def order_mx(records: Iterable[tuple[int, str]], domain: str) -> list[Destination]:
    """MX records (preference, exchange) in delivery order; raises on a null MX.

    RFC 7505 §3: a null MX is the single record ``0 .``; RFC 5321 §5.1: lowest preference
    first, random order among equal preferences.
    """
    items = [(pref, host.rstrip(".").lower()) for pref, host in records]
    if any(host == "" for _, host in items):
        # RFC 7505 §4.1: the domain accepts no mail; report 556 / 5.1.10
        raise ResolutionError(
            f"{domain} does not accept mail (null MX, RFC 7505)",
            permanent=True,
            enhanced="5.1.10",
        )
    random.shuffle(items)
    items.sort(key=lambda item: item[0])
    return [Destination(host=host, port=SMTP_PORT, preference=pref) for pref, host in items]


class MxResolver:
    """Resolves a recipient domain to the ordered list of hosts to try."""

    def __init__(
        self,
        transport: Mapping[str, str] | None = None,
        *,
        nameservers: list[str] | None = None,
        dns_port: int = 53,
        timeout: float = 10.0,
    ) -> None:
        self._transport: dict[str, str] = {}
        self.set_transport(transport or {})
        self._resolver = dns.asyncresolver.Resolver(configure=nameservers is None)
        if nameservers is not None:
            self._resolver.nameservers = list(nameservers)
            self._resolver.port = dns_port
        self._resolver.lifetime = timeout

    def set_transport(self, transport: Mapping[str, str]) -> None:
        """Replaces the ``[transport]`` overrides (a reload); deliveries already resolved
        keep their destination, the next resolution uses the new table."""
        self._transport = {_a_label(key): value for key, value in transport.items()}

    def transport_for(self, domain: str) -> Destination | None:
        """The ``[transport]`` override for ``domain``, if any (exact domain match)."""
        value = self._transport.get(_a_label(domain))
        if value is None:
            return None
        target = parse_transport(value)
        return Destination(
            host=target.host, port=target.port, from_transport=True,
            tls_name=target.certificate_name(_a_label(domain)),
        )

    async def resolve(self, domain: str) -> list[Destination]:
        """The hosts to try for ``domain``, best first; raises :class:`ResolutionError`."""
        try:
            name = _a_label(domain)
        except ValueError as exc:
            raise ResolutionError(str(exc), permanent=True, enhanced="5.1.2") from None
        override = self.transport_for(name)
        if override is not None:
            return [override]
        try:
            answer = await self._resolver.resolve(name, "MX")
            records = [(int(r.preference), r.exchange.to_text()) for r in answer]
        except dns.resolver.NXDOMAIN:
            raise ResolutionError(
                f"domain {name} does not exist (DNS NXDOMAIN)", permanent=True, enhanced="5.1.2"
            ) from None
        except dns.resolver.NoAnswer:
            records = []
        except (dns.exception.Timeout, dns.resolver.NoNameservers) as exc:
            raise ResolutionError(
                f"DNS lookup of MX {name} failed: {type(exc).__name__}",
                permanent=False,
                enhanced="4.4.3",
            ) from None
        if records:
            return order_mx(records, name)
        # RFC 5321 §5.1: no MX records: the domain itself is the host (implicit MX), if it
        # has an address record.
        for rdtype in ("A", "AAAA"):
            try:
                await self._resolver.resolve(name, rdtype)
                return [Destination(host=name, port=SMTP_PORT)]
            except (dns.resolver.NoAnswer, dns.resolver.NXDOMAIN):
                continue
            except (dns.exception.Timeout, dns.resolver.NoNameservers) as exc:
                raise ResolutionError(
                    f"DNS lookup of {rdtype} {name} failed: {type(exc).__name__}",
                    permanent=False,
                    enhanced="4.4.3",
                ) from None
        raise ResolutionError(
            f"domain {name} has no MX and no address record", permanent=True, enhanced="5.1.2"
        )


def _a_label(domain: str) -> str:
    """The IDNA A-label form (lower case, no trailing dot); ValueError when not a domain."""
    try:
        return normalise_domain(domain)
    except InvalidDomain as exc:
        raise ValueError(f"invalid destination domain {domain!r}: {exc}") from None
