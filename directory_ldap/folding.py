"""Accent-free copies of the searched text attributes, so that LDAP clients find "Étienne"
by typing "etienne".

Why subtypes: slapd matches a filter on an attribute against the values of its subtypes too
(RFC 4512 §2.5.1; ``(cn=*etienne*)`` also tests ``mssanteFoldedCn``), and an index set on an
attribute covers its subtypes (slapd.conf(5) ``index``). So the accent-free copy of
``cn: Étienne Dupré`` is stored as ``mssanteFoldedCn: Etienne Dupre``, and the filters that
Thunderbird and Outlook send, unchanged, find it through the ``cn`` index: no filter
rewriting (slapd has none for clients), no extra index, and ``cn`` itself keeps the one
spelling that address books show. Case is left to the attributes' caseIgnore matching rules.
A copy is written only for values that change when folded (about one entry in five in the
national extract), which keeps the import's index work small.
"""

from __future__ import annotations

import unicodedata

FOLDED_ATTRIBUTES: dict[str, str] = {
    "cn": "mssanteFoldedCn",
    "sn": "mssanteFoldedSn",
    "givenName": "mssanteFoldedGivenName",
    "displayName": "mssanteFoldedDisplayName",
    "l": "mssanteFoldedL",
    "o": "mssanteFoldedO",
    "mssanteProfessionLabel": "mssanteFoldedProfessionLabel",
    "mssanteSpecialtyLabel": "mssanteFoldedSpecialtyLabel",
    "mssanteStructureName": "mssanteFoldedStructureName",
}
"""Searched attribute → its accent-free subtype (mssante.schema)."""

# Ligatures that NFKD leaves whole but French speakers type as two letters ("coeur").
_LIGATURES = str.maketrans({"œ": "oe", "Œ": "OE", "æ": "ae", "Æ": "AE"})


def strip_accents(text: str) -> str:
    """"Étienne Cœur" → "Etienne Coeur" (case kept: the matching rules ignore it)."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_LIGATURES))
    return unicodedata.normalize(
        "NFC", "".join(c for c in decomposed if not unicodedata.combining(c)))


def add_folded(attrs: dict[str, list[bytes]]) -> dict[str, list[bytes]]:
    """Adds to ``attrs`` (python-ldap form) the folded copy of every value that has
    accents or ligatures; returns ``attrs``."""
    for attr, folded_attr in FOLDED_ATTRIBUTES.items():
        extra: list[bytes] = []
        for value in attrs.get(attr, ()):
            text = value.decode("utf-8")
            plain = strip_accents(text)
            if plain != text:
                encoded = plain.encode("utf-8")
                if encoded not in extra:
                    extra.append(encoded)
        if extra:
            attrs[folded_attr] = extra
    return attrs
