"""Which family a health-PKI certificate belongs to: personal, applicative or server.

MSSanté gives each family one use: a professional's personal certificate (CPS card or "PS"
software certificate) opens that professional's nominative mailbox; an organisation's
applicative certificate opens that organisation's applicative mailboxes; an operator's
server certificate authenticates that operator's MTA on the relay between operators. All
three chain to the same IGC-Santé anchors, so the chain alone says nothing about the use:
a CPS card that relays, or a server certificate that opens a mailbox, must be refused.

The family is read from the certificate policy OIDs (RFC 5280 §4.2.1.4), which is what an
issuing authority writes to say under which rules, and for which use, it issued the
certificate; then the key usage and extended key usage must allow that use. The shape of
the commonName is never looked at: any family can carry any name.

Which OIDs mean which family is configuration (``[certificates]``): the development PKI's
own OIDs are the defaults, under the project's arc (see :data:`config.settings.
DEV_CERT_POLICY_ARC`); production adds the OIDs of the IGC-Santé certification policies.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from config import Settings
from config.settings import (
    DEV_APPLICATION_POLICY,
    DEV_PERSONAL_POLICY,
    DEV_SERVER_POLICY,
)
from trustspace.certs import allows_digital_signature, extended_key_usages, policy_oids

SERVER_AUTH = ExtendedKeyUsageOID.SERVER_AUTH.dotted_string
CLIENT_AUTH = ExtendedKeyUsageOID.CLIENT_AUTH.dotted_string


class Family(StrEnum):
    """What a certificate is for, as its policy and key usages say."""

    PERSONAL = "personal"
    APPLICATION = "application"
    SERVER = "server"
    UNKNOWN = "unknown"


FAMILY_WORDS = {
    Family.PERSONAL: "a personal certificate (a health professional's CPS card or PS certificate)",
    Family.APPLICATION: "an applicative (organisation) certificate",
    Family.SERVER: "a server certificate",
    Family.UNKNOWN: "a certificate of no family accepted here",
}
"""How each family is named in refusals: for the administrator who configured the peer."""

_NEEDED_EKUS = {
    # An operator presents its server certificate as a TLS client on the relay and as a
    # TLS server to its peers: both purposes must be allowed.
    Family.SERVER: {SERVER_AUTH, CLIENT_AUTH},
    Family.APPLICATION: {CLIENT_AUTH},
    Family.PERSONAL: {CLIENT_AUTH},
}


@dataclass(frozen=True)
class PolicyOids:
    """The certificate policy OIDs that put a certificate in each family."""

    personal: frozenset[str] = frozenset({DEV_PERSONAL_POLICY})
    application: frozenset[str] = frozenset({DEV_APPLICATION_POLICY})
    server: frozenset[str] = frozenset({DEV_SERVER_POLICY})

    @classmethod
    def from_settings(cls, settings: Settings) -> PolicyOids:
        certs = settings.certificates
        return cls(
            personal=frozenset(certs.personal_policies),
            application=frozenset(certs.application_policies),
            server=frozenset(certs.server_policies),
        )

    def families(self, oids: Iterable[str]) -> set[Family]:
        found: set[Family] = set()
        for oid in oids:
            if oid in self.personal:
                found.add(Family.PERSONAL)
            if oid in self.application:
                found.add(Family.APPLICATION)
            if oid in self.server:
                found.add(Family.SERVER)
        return found


@dataclass(frozen=True)
class Classification:
    """The family of a certificate and, when it is UNKNOWN, why (one clause, for refusals)."""

    family: Family
    reason: str = ""
    policies: tuple[str, ...] = ()

    @property
    def words(self) -> str:
        return FAMILY_WORDS[self.family]


def classify(cert: x509.Certificate, oids: PolicyOids) -> Classification:
    """The certificate's family by policy OID, confirmed by its key usages.

    UNKNOWN when no configured policy OID is present, when the OIDs point at several
    families (an issuing error: no single use can be trusted), or when the key usages do
    not allow the family's use (a server policy on a certificate without serverAuth and
    clientAuth, for example).
    """
    policies = tuple(policy_oids(cert))
    families = oids.families(policies)
    # At most three OIDs in a reply line (RFC 5321 §4.5.3.1.5: 512 octets at most).
    shown = ", ".join(policies[:3]) + (" and more" if len(policies) > 3 else "") or "none"
    if not families:
        return Classification(
            Family.UNKNOWN,
            f"it carries no certificate policy of a personal, applicative or server "
            f"certificate accepted here (its policies: {shown})",
            policies,
        )
    if len(families) > 1:
        names = " and ".join(sorted(f.value for f in families))
        return Classification(
            Family.UNKNOWN,
            f"its certificate policies ({shown}) claim several uses at once ({names})",
            policies,
        )
    family = families.pop()
    ekus = extended_key_usages(cert)
    missing = _NEEDED_EKUS[family] - (ekus or set())
    if ekus is None or missing:
        purposes = " and ".join(
            sorted("TLS server" if m == SERVER_AUTH else "TLS client" for m in missing)
        ) or "any"
        return Classification(
            Family.UNKNOWN,
            f"its policy makes it {FAMILY_WORDS[family]} but its extended key usage does not "
            f"allow {purposes} authentication",
            policies,
        )
    if not allows_digital_signature(cert):
        return Classification(
            Family.UNKNOWN,
            "its key usage does not allow digital signatures, which TLS authentication needs",
            policies,
        )
    return Classification(family, "", policies)
