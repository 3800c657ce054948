"""The MSSanté whitelist (``listeblanchemssante.xml``): domain names, parsing, the trust space.

The published document lists every domain of the MSSanté trust space at ``//Domaine/Nom`` in
the namespace ``https://listeblanche.mssante.fr/schema``; some names are in Unicode. Mail is
accepted from and relayed to those domains only, so a wrong parse is a security decision:

* the document comes from the network, so it is parsed with expat directly and any DTD,
  entity declaration or external reference is refused outright (no XXE, no "billion laughs"),
  instead of trusting the parser's defaults;
* an empty list, a truncated document or a document in another namespace is refused with a
  :class:`WhitelistError` so the caller keeps the list it already has;
* elements and attributes we do not use are ignored, not rejected, and the raw document is
  kept so the last good copy written to disk is the document as published.
"""

from __future__ import annotations

import functools
import re
import xml.etree.ElementTree as ET  # noqa: S405 - fed only by the guarded expat parser below
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from xml.parsers import expat

import idna  # UTS 46 / IDNA 2008 (the stdlib codec is IDNA 2003)

NAMESPACE = "https://listeblanche.mssante.fr/schema"
_DOMAINE = f"{{{NAMESPACE}}}Domaine"
_NOM = f"{{{NAMESPACE}}}Nom"
DEFAULT_MAX_SIZE = 32 * 1024 * 1024

"""Which IDNA rules normalise domains: UTS 46 (IDNA 2008) via ``idna``, else the stdlib's."""

# RFC 1035 §2.3.1 / RFC 5890 §2.3.1: an A-label or NR-LDH label, 1 to 63 octets.
_LDH_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


class InvalidDomain(ValueError):
    """A value that is not a usable domain name; the message names the value and why."""


class WhitelistError(ValueError):
    """A whitelist document that must not replace the list in force.

    ``reason`` is a short machine word for logs (``empty``, ``malformed``, ``namespace``,
    ``dtd``, ``too_large``, ``fetch``); the message is a sentence for a person.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


# -- domain names ---------------------------------------------------------------------------


# Pure and asked for at every MAIL and RCPT: the UTS 46 mapping is costly, domains repeat.
@functools.lru_cache(maxsize=65536)
def normalise_domain(value: str) -> str:
    """The canonical form of a domain: lower-case A-labels, no trailing dot.

    ``hôpital-é.mssante.fr``, ``HÔPITAL-É.mssante.fr.`` and ``xn--hpital--gya5f.mssante.fr``
    all give the same string, so one set lookup answers whether a domain is trusted,
    whatever form the whitelist or the SMTP peer used (RFC 5890 §2.3.2.1, RFC 6531 §3.2).
    Raises :class:`InvalidDomain` naming the value when it is not a domain name.
    """
    if not isinstance(value, str):
        raise InvalidDomain(f"{value!r} is not a domain name")
    text = value.strip()
    if text.endswith("."):
        text = text[:-1]  # RFC 1034 §3.1: the trailing dot only marks the name as absolute
    if not text:
        raise InvalidDomain(f"{value!r} is not a domain name: it is empty")
    if any(c.isspace() for c in text) or any(c in text for c in "@/\\[]<>:"):
        raise InvalidDomain(f"{value!r} is not a domain name: it contains forbidden characters")
    # UTS 46 §4 step 1 maps the ideographic full stops to "." before splitting.
    for dot in ("\u3002", "\uff0e", "\uff61"):
        text = text.replace(dot, ".")
    try:
        ascii_name = idna.encode(text, uts46=True, transitional=False).decode("ascii")
    except (idna.IDNAError, UnicodeError) as exc:
        raise InvalidDomain(f"{value!r} is not a valid domain name: {exc}") from None
    ascii_name = ascii_name.lower()
    labels = ascii_name.split(".")
    if len(labels) < 2:
        raise InvalidDomain(f"{value!r} is not a domain name: it needs at least two labels")
    if len(ascii_name) > 253:  # RFC 1035 §2.3.4 (255 octets on the wire)
        raise InvalidDomain(f"{value!r} is not a domain name: longer than 253 characters")
    for label in labels:
        if not _LDH_LABEL.match(label):
            raise InvalidDomain(f"{value!r} is not a domain name: bad label {label!r}")
        if label.startswith("xn--"):
            # An A-label must decode to a valid U-label (RFC 5891 §5.4), else it is a fake.
            try:
                to_unicode(label)
            except InvalidDomain:
                raise InvalidDomain(
                    f"{value!r} is not a domain name: {label!r} is not a valid A-label"
                ) from None
        elif label[2:4] == "--":
            # RFC 5891 §4.2.3.1: hyphens in positions 3 and 4 are reserved for A-labels.
            raise InvalidDomain(f"{value!r} is not a domain name: bad label {label!r}")
    return ascii_name


def to_unicode(domain: str) -> str:
    """The Unicode (U-label) form of a normalised domain, for messages people read."""
    try:
        return str(idna.decode(domain))
    except (UnicodeError, ValueError) as exc:
        raise InvalidDomain(f"{domain!r} cannot be decoded: {exc}") from None


def is_domain(value: str) -> bool:
    """True when ``value`` is a usable domain name."""
    try:
        normalise_domain(value)
    except InvalidDomain:
        return False
    return True


# -- the trust space -------------------------------------------------------------------------


@dataclass(frozen=True)
class TrustSpace:
    """One loaded whitelist: the domains we exchange mail with, plus our own.

    Immutable, so a refresh swaps the whole object at once and a session that looked at the
    old list never sees half of the new one.
    """

    domains: frozenset[str]
    local_domains: frozenset[str]
    source: str
    loaded_at: datetime
    raw: bytes = field(repr=False)
    skipped: tuple[str, ...] = ()

    @property
    def count(self) -> int:
        """How many domains the document listed (local domains not counted)."""
        return len(self.domains)

    def __len__(self) -> int:
        return len(self.domains)

    def contains(self, domain: str) -> bool:
        """Whether ``domain`` (any form: Unicode, A-label, upper case, trailing dot) is trusted.

        Our own domains are always in, even if the published list lags behind.
        A value that is not a domain is simply not in.
        """
        try:
            name = normalise_domain(domain)
        except InvalidDomain:
            return False
        return name in self.domains or name in self.local_domains

    __contains__ = contains  # type: ignore[assignment]

    def is_local(self, domain: str) -> bool:
        """Whether ``domain`` is one of the domains this operator serves."""
        try:
            return normalise_domain(domain) in self.local_domains
        except InvalidDomain:
            return False

    def sorted_domains(self) -> list[str]:
        """Every trusted domain, local ones included, sorted, in A-label form."""
        return sorted(self.domains | self.local_domains)

    def with_local_domains(self, local: Iterable[str]) -> TrustSpace:
        """The same list with a different set of local domains."""
        return TrustSpace(
            domains=self.domains,
            local_domains=frozenset(normalise_domain(d) for d in local),
            source=self.source,
            loaded_at=self.loaded_at,
            raw=self.raw,
            skipped=self.skipped,
        )


# -- safe parsing ----------------------------------------------------------------------------


_TRUNCATED_CODES = frozenset(
    expat.errors.codes[message]
    for message in (
        expat.errors.XML_ERROR_NO_ELEMENTS,
        expat.errors.XML_ERROR_UNCLOSED_TOKEN,
        expat.errors.XML_ERROR_PARTIAL_CHAR,
    )
)
"""Expat errors that mean the document stops early (a download cut short)."""


def _refuse_dtd(*_args: Any) -> None:
    raise WhitelistError(
        "dtd", "the whitelist contains a DTD or entity declaration, which is never accepted"
    )


def _safe_tree(data: bytes) -> ET.Element:
    """Parses ``data`` into an ElementTree, refusing DTDs and entities explicitly.

    The stdlib does not fetch external entities, and expat 2.4+ limits entity amplification,
    but both are defaults of the library in use; a whitelist has no reason to carry a DTD,
    so any DOCTYPE, entity declaration or external reference stops the parse.
    """
    parser = expat.ParserCreate(namespace_separator="}")
    builder = ET.TreeBuilder()

    def qname(name: str) -> str:
        return "{" + name if "}" in name else name

    def start(name: str, attrs: dict[str, str]) -> None:
        builder.start(qname(name), {qname(k): v for k, v in attrs.items()})

    def end(name: str) -> None:
        builder.end(qname(name))

    parser.StartDoctypeDeclHandler = _refuse_dtd
    parser.EntityDeclHandler = _refuse_dtd
    parser.UnparsedEntityDeclHandler = _refuse_dtd
    parser.ExternalEntityRefHandler = _refuse_dtd  # type: ignore[assignment]
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = builder.data
    parser.buffer_text = True
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        reason = "truncated" if exc.code in _TRUNCATED_CODES else "malformed"
        raise WhitelistError(reason, f"the whitelist is not well-formed XML ({exc})") from None
    except WhitelistError:
        raise  # a DTD refused by a handler (WhitelistError is a ValueError)
    except (LookupError, ValueError) as exc:
        # The XML declaration names the encoding, so the publisher (or whoever stands in
        # its way) chooses which codec expat asks Python for: an unknown one is a
        # LookupError, a multi-byte one (utf-32) a ValueError, not an ExpatError.
        raise WhitelistError(
            "malformed", f"the whitelist declares an encoding that cannot be read ({exc})"
        ) from None
    return builder.close()


def parse_whitelist(
    data: bytes,
    *,
    source: str,
    local_domains: Iterable[str] = (),
    loaded_at: datetime | None = None,
    max_size: int = DEFAULT_MAX_SIZE,
) -> TrustSpace:
    """Parses the published whitelist into a :class:`TrustSpace`, or raises WhitelistError.

    Names that are not domains are skipped (and reported in ``skipped``) rather than failing
    the whole list, since one bad entry among thousands must not stop every refresh; a list
    with no usable domain at all is refused.
    """
    if not data or not data.strip():
        raise WhitelistError("empty", f"the whitelist from {source} is empty")
    if len(data) > max_size:
        raise WhitelistError(
            "too_large", f"the whitelist from {source} is larger than {max_size} octets"
        )
    root = _safe_tree(data)
    if not root.tag.startswith("{" + NAMESPACE + "}"):
        found = root.tag[1:].split("}")[0] if root.tag.startswith("{") else "no namespace"
        raise WhitelistError(
            "namespace",
            f"the whitelist from {source} is not in the namespace {NAMESPACE} (found {found})",
        )
    domains: set[str] = set()
    skipped: list[str] = []
    for entry in root.iter(_DOMAINE):
        for nom in entry.findall(_NOM):
            name = (nom.text or "").strip()
            if not name:
                continue
            try:
                domains.add(normalise_domain(name))
            except InvalidDomain:
                skipped.append(name)
    if not domains:
        raise WhitelistError("empty", f"the whitelist from {source} lists no domain")
    return TrustSpace(
        domains=frozenset(domains),
        local_domains=frozenset(normalise_domain(d) for d in local_domains),
        source=source,
        loaded_at=loaded_at or datetime.now(UTC),
        raw=data,
        skipped=tuple(skipped),
    )


def build_whitelist_xml(domains: Iterable[str], *, operator: str = "") -> bytes:
    """A whitelist document in the published shape, listing ``domains`` (Unicode kept).

    Used to write the embedded default list and by tests; the element layout mirrors the
    published file so the same parser reads both.
    """
    ET.register_namespace("", NAMESPACE)
    root = ET.Element(f"{{{NAMESPACE}}}ListeBlanche")
    root.set("dateGeneration", datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    container = ET.SubElement(root, f"{{{NAMESPACE}}}Domaines")
    for name in domains:
        entry = ET.SubElement(container, _DOMAINE)
        ET.SubElement(entry, _NOM).text = name
        if operator:
            ET.SubElement(entry, f"{{{NAMESPACE}}}Operateur").text = operator
    ET.indent(root)
    body: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return body + b"\n"
