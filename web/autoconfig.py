"""Client autoconfiguration: Thunderbird's autoconfig and Outlook's Autodiscover (POX).

A professional types an address and a password; the client asks this gateway where the
servers are. Both documents name the implicit-TLS ports first (RFC 8314 §4.1 prefers them)
and the STARTTLS ones second, with the full address as the login name. Only addresses of
the domains this gateway serves get an answer, and the answer never depends on whether the
mailbox exists: autoconfiguration must not tell a stranger which addresses are real.

Autodiscover requests are XML from the network: they are read with a size limit before
parsing, and any DOCTYPE is refused outright, so no entity can be declared or expanded.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET  # noqa: S405 - DOCTYPE refused before parsing, see below
from collections.abc import Mapping
from dataclasses import dataclass
from xml.sax.saxutils import escape

from config import Settings

AUTODISCOVER_REQUEST_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"
AUTODISCOVER_RESPONSE_NS = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
OUTLOOK_RESPONSE_NS = (
    "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
)
MAX_AUTODISCOVER_REQUEST = 16 * 1024
"""Octets of an Autodiscover request body; real requests are a few hundred."""


class AutoconfigError(ValueError):
    """A request that cannot be answered; the text says why, in French for people."""


@dataclass(frozen=True)
class ClientSettings:
    """What a mail client needs: host name, ports, the domains served, the LDAP base."""

    host: str
    domains: tuple[str, ...]
    imap_tls_port: int
    imap_port: int
    submissions_port: int
    submission_port: int
    display_name: str

    @classmethod
    def from_settings(
        cls, settings: Settings, bound: Mapping[str, int] | None = None
    ) -> ClientSettings:
        """``bound``: the ports the listeners really bound ("imaps", "imap", "submissions",
        "submission"), which differ from the settings when those ask for port 0."""
        ports = {
            "imaps": settings.imap.tls_port, "imap": settings.imap.port,
            "submissions": settings.smtp.submissions_port,
            "submission": settings.smtp.submission_port, **(bound or {}),
        }
        return cls(
            host=settings.hostname,
            domains=tuple(d.lower() for d in settings.gateway.domains),
            imap_tls_port=ports["imaps"],
            imap_port=ports["imap"],
            submissions_port=ports["submissions"],
            submission_port=ports["submission"],
            display_name=f"Messagerie sécurisée de santé ({settings.primary_domain})",
        )

    def domain_of(self, address: str | None) -> str:
        """The served domain of ``address`` (the primary one when no address is given)."""
        if not address:
            return self.domains[0]
        local, at, domain = address.strip().rpartition("@")
        if not at or not local or len(address) > 320:
            raise AutoconfigError(f"adresse électronique invalide : {address[:80]!r}")
        domain = domain.lower()
        if domain not in self.domains:
            raise LookupError(domain)
        return domain


def thunderbird_config(client: ClientSettings, address: str | None) -> bytes:
    """The config-v1.1 document for ``address``'s domain (Thunderbird autoconfig).

    Raises :class:`AutoconfigError` for a malformed address and ``LookupError`` for a
    domain this gateway does not serve.
    """
    domain = client.domain_of(address)
    host = escape(client.host)

    def server(tag: str, kind: str, port: int, socket_type: str) -> str:
        return (
            f'    <{tag} type="{kind}">\n'
            f"      <hostname>{host}</hostname>\n"
            f"      <port>{port}</port>\n"
            f"      <socketType>{socket_type}</socketType>\n"
            f"      <authentication>password-cleartext</authentication>\n"
            f"      <authentication>TLS-client-cert</authentication>\n"
            f"      <username>%EMAILADDRESS%</username>\n"
            f"    </{tag}>\n"
        )

    text = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<clientConfig version="1.1">\n'
        f'  <emailProvider id="{escape(domain)}">\n'
        + "".join(f"    <domain>{escape(d)}</domain>\n" for d in client.domains)
        + f"    <displayName>{escape(client.display_name)}</displayName>\n"
        f"    <displayShortName>MSSanté</displayShortName>\n"
        + server("incomingServer", "imap", client.imap_tls_port, "SSL")
        + server("incomingServer", "imap", client.imap_port, "STARTTLS")
        + server("outgoingServer", "smtp", client.submissions_port, "SSL")
        + server("outgoingServer", "smtp", client.submission_port, "STARTTLS")
        + "  </emailProvider>\n"
        "</clientConfig>\n"
    )
    return text.encode("utf-8")


def autodiscover_address(body: bytes) -> str:
    """The ``EMailAddress`` of an Outlook POX Autodiscover request.

    Raises :class:`AutoconfigError` when the request is too large, declares a DOCTYPE, is
    not well-formed XML, or carries no address.
    """
    if len(body) > MAX_AUTODISCOVER_REQUEST:
        raise AutoconfigError("requête Autodiscover trop grande")
    if b"<!DOCTYPE" in body.upper() or b"<!ENTITY" in body.upper():
        raise AutoconfigError("requête Autodiscover refusée : DOCTYPE interdit")
    try:
        root = ET.fromstring(body)  # noqa: S314 - no DOCTYPE, so no entity can be defined
    except (ET.ParseError, LookupError, ValueError) as exc:
        # LookupError: an XML declaration naming an encoding Python does not know
        raise AutoconfigError(f"requête Autodiscover illisible : {exc}"[:200]) from None
    for element in root.iter():
        if element.tag.rsplit("}", 1)[-1] == "EMailAddress" and element.text:
            return element.text.strip()
    raise AutoconfigError("requête Autodiscover sans EMailAddress")


def autodiscover_response(client: ClientSettings, address: str) -> bytes:
    """The POX answer naming IMAP and SMTP over implicit TLS, login = the full address."""
    client.domain_of(address)  # raises for a foreign domain or a malformed address

    def protocol(kind: str, port: int) -> str:
        return (
            "      <Protocol>\n"
            f"        <Type>{kind}</Type>\n"
            f"        <Server>{escape(client.host)}</Server>\n"
            f"        <Port>{port}</Port>\n"
            "        <DomainRequired>off</DomainRequired>\n"
            f"        <LoginName>{escape(address)}</LoginName>\n"
            "        <SPA>off</SPA>\n"
            "        <SSL>on</SSL>\n"
            "        <AuthRequired>on</AuthRequired>\n"
            "      </Protocol>\n"
        )

    text = (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        f'<Autodiscover xmlns="{AUTODISCOVER_RESPONSE_NS}">\n'
        f'  <Response xmlns="{OUTLOOK_RESPONSE_NS}">\n'
        "    <Account>\n"
        "      <AccountType>email</AccountType>\n"
        "      <Action>settings</Action>\n"
        + protocol("IMAP", client.imap_tls_port)
        + protocol("SMTP", client.submissions_port)
        + "    </Account>\n"
        "  </Response>\n"
        "</Autodiscover>\n"
    )
    return text.encode("utf-8")


def autodiscover_error(code: int, message: str) -> bytes:
    """An Autodiscover error document (600: invalid request, 603: no configuration)."""
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        f'<Autodiscover xmlns="{AUTODISCOVER_RESPONSE_NS}">\n'
        "  <Response>\n"
        f'    <Error Id="0">\n'
        f"      <ErrorCode>{code}</ErrorCode>\n"
        f"      <Message>{escape(message)}</Message>\n"
        "      <DebugData />\n"
        "    </Error>\n"
        "  </Response>\n"
        "</Autodiscover>\n"
    ).encode()
