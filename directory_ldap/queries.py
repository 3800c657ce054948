"""LDAP filters (RFC 4515) for correspondent search and lookups, and paged result reading."""

from __future__ import annotations

import unicodedata
from typing import Any

import ldap
from ldap.controls import SimplePagedResultsControl
from ldap.filter import escape_filter_chars

from directory_ldap.addresses import ascii_address

# Attributes a free-text word may match (substring, RFC 4515 §3 "substrings"); each one has a
# substring index (slapd_config.SUBSTRING_ATTRIBUTES), else the OR would scan every entry. The
# structure name is matched through o, which always carries it.
WORD_ATTRIBUTES = ("cn", "mail", "mssanteMailUTF8", "sn", "givenName", "o", "l")
LABEL_ATTRIBUTES = ("mssanteSpecialtyLabel", "mssanteProfessionLabel")

Labels = dict[str, frozenset[str]]
"""attribute → every distinct value it has in the directory (specialty, profession labels)."""


def fold(text: str) -> str:
    """Case and accents ignored: "pediatrie" finds "Pédiatrie"."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def word_filter(word: str, labels: Labels | None = None) -> str:
    """One word: a substring of a name, address, place or specialty; a number may also be a
    postal code or département prefix ("31" finds Toulouse). With ``labels`` (the managed
    directory's label vocabulary) labels are matched here and asked for by equality."""
    w = escape_filter_chars(word)
    parts = [f"({a}=*{w}*)" for a in WORD_ATTRIBUTES]
    if labels is None:
        parts += [f"({a}=*{w}*)" for a in LABEL_ATTRIBUTES]
    else:
        folded = fold(word)
        for attr in LABEL_ATTRIBUTES:
            parts += [f"({attr}={escape_filter_chars(v)})"
                      for v in sorted(labels.get(attr, ())) if folded in fold(v)]
    if word.isascii() and (word.isdigit() or (len(word) <= 3 and word[:2].isdigit())):
        parts += [f"(postalCode={w}*)", f"(st={w})"]
    return "(|" + "".join(parts) + ")"


def text_filter(
    text: str, include_liste_rouge: bool = False, labels: Labels | None = None
) -> str:
    """Every word must match (AND of ORs), among mailbox entries."""
    words = [w for w in text.split() if w]
    clauses = ["(objectClass=mssanteMailbox)", *(word_filter(w, labels) for w in words)]
    if not include_liste_rouge:
        clauses.append("(!(mssanteListeRouge=TRUE))")
    return "(&" + "".join(clauses) + ")"


def address_filter(address: str) -> str:
    """The entry of ``address``: by ``mail`` (its ASCII form, so either form of an
    internationalised domain finds it) or by ``mssanteMailUTF8`` (addresses.py)."""
    if address.isascii():
        return f"(&(objectClass=mssanteMailbox)(mail={escape_filter_chars(address)}))"
    forms = [f"(mssanteMailUTF8={escape_filter_chars(address)})"]
    mail = ascii_address(address)
    if mail:
        forms.append(f"(mail={escape_filter_chars(mail)})")
    return f"(&(objectClass=mssanteMailbox)(|{''.join(forms)}))"


def search_limited(
    conn: Any, base: str, flt: str, attrs: list[str], limit: int
) -> list[tuple[str, dict[str, list[bytes]]]]:
    """Up to ``limit`` entries; a size limit reached is not an error (RFC 4511 §4.5.1.6)."""
    out: list[tuple[str, dict[str, list[bytes]]]] = []
    msgid = conn.search_ext(base, ldap.SCOPE_SUBTREE, flt, attrs, sizelimit=limit)
    try:
        while True:
            rtype, data, _msgid, _ctrls = conn.result3(msgid, all=0)
            for dn, entry in data or []:
                if dn is not None and isinstance(entry, dict):
                    out.append((dn, entry))
            if rtype == ldap.RES_SEARCH_RESULT:
                break
    except (ldap.SIZELIMIT_EXCEEDED, ldap.ADMINLIMIT_EXCEEDED):
        pass
    except ldap.NO_SUCH_OBJECT:
        return []
    return out[:limit]


def search_paged(
    conn: Any, base: str, flt: str, attrs: list[str], page_size: int = 2000
) -> list[tuple[str, dict[str, list[bytes]]]]:
    """All entries, read in pages (RFC 2696) so no server size limit cuts the list."""
    out: list[tuple[str, dict[str, list[bytes]]]] = []
    ctrl = SimplePagedResultsControl(True, size=page_size, cookie="")
    while True:
        try:
            msgid = conn.search_ext(base, ldap.SCOPE_SUBTREE, flt, attrs, serverctrls=[ctrl])
            _rtype, data, _msgid, sctrls = conn.result3(msgid)
        except ldap.NO_SUCH_OBJECT:
            return out
        out.extend((dn, e) for dn, e in data if dn is not None)
        cookie = b""
        for c in sctrls:
            if c.controlType == SimplePagedResultsControl.controlType:
                cookie = c.cookie
        if not cookie:
            return out
        ctrl.cookie = cookie
