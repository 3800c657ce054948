"""Reader of the public "Extraction Correspondance MSSanté" file (all MSSanté mailboxes).

UTF-8 text, ``|``-separated, one header row, no quoting. Columns are matched by header name
(accents, case and the " structure BAL" suffix ignored), so column order, unknown columns and
missing optional columns do not matter; the ``Adresse BAL`` column is required. Bad rows are
reported with their line number and skipped, never imported half-read.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from directory_ldap.addresses import ascii_address
from directory_ldap.entry import DirectoryEntry, valid_address
from directory_ldap.layout import MAILBOX_TYPES

ENTRY_FORMAT = "2"
"""Part of every row digest: raised when the same row gives a different LDAP entry (2: the
accent-free copies of directory_ldap/folding.py), so the next import rewrites every entry
instead of finding them all unchanged."""

# The real extract's 31 columns, in its order (ANS, data.gouv.fr).
REAL_COLUMNS = (
    "Type de BAL", "Adresse BAL", "Type Identifiant PP", "Identifiant PP",
    "Identification nationale PP", "Type identifiant structure", "Identification Structure",
    "Service de rattachement", "Civilité d'exercice", "Nom d'exercice", "Prénom d'exercice",
    "Catégorie profession", "Libellé de catégorie profession", "Code Profession",
    "Libellé Profession", "Code savoir-faire", "Libellé savoir-faire", "Dématérialisation",
    "Raison Sociale structure BAL", "Enseigne commerciale structure BAL",
    "L2COMPLEMENTLOCALISATION structure BAL", "L3COMPLEMENTDISTRIBUTION structure BAL",
    "L4NUMEROVOIE structure BAL", "L4COMPLEMENTNUMEROVOIE structure BAL",
    "NL4TYPEVOIE structure BAL", "L4LIBELLEVOIE structure BAL",
    "L5LIEUDITMENTION structure BAL", "L6LIGNEACHEMINEMENT structure BAL",
    "Code postal structure BAL", "Département structure BAL", "Pays structure BAL",
)

# normalised header → our key; several spellings seen in the wild map to one key.
_KEYS = {
    "typedebal": "type", "typebal": "type",
    "adressebal": "address",
    "typeidentifiantpp": "id_type", "typedidentifiantpp": "id_type",
    "identifiantpp": "id_pp",
    "identificationnationalepp": "idnat",
    "identificationstructure": "structure_id",
    "servicederattachement": "service",
    "civilitedexercice": "title",
    "nomdexercice": "surname",
    "prenomdexercice": "given_name",
    "codeprofession": "profession_code",
    "libelleprofession": "profession_label",
    "codesavoirfaire": "specialty_code",
    "libellesavoirfaire": "specialty_label",
    "raisonsociale": "structure_name",
    "enseignecommerciale": "trade_name",
    "l2complementlocalisation": "l2", "l3complementdistribution": "l3",
    "l4numerovoie": "l4num", "l4complementnumerovoie": "l4comp", "nl4typevoie": "l4type",
    "l4libellevoie": "l4lib", "l5lieuditmention": "l5", "l6ligneacheminement": "l6",
    "codepostal": "postal_code",
    "departement": "department",
    # not in today's public file; an operator's extract may rank a person's mailboxes
    "rangdepreference": "preferred_rank", "rangpreference": "preferred_rank",
    "rangbalpreferee": "preferred_rank", "preferredrank": "preferred_rank",
    "mssantepreferredrank": "preferred_rank",
}


def normalise_header(name: str) -> str:
    text = unicodedata.normalize("NFKD", name.strip().lstrip("\ufeff"))
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    text = re.sub(r"\s*structure\s*bal$", "", text)
    return re.sub(r"[^a-z0-9]", "", text)


@dataclass(frozen=True)
class BadRow:
    line: int
    reason: str


@dataclass(frozen=True)
class ParsedRow:
    line: int
    entry: DirectoryEntry
    row_hash: str


@dataclass
class Extract:
    """The readable rows of one file, its bad rows and which columns were used."""

    rows: dict[str, ParsedRow] = field(default_factory=dict)  # lower-case address → row
    bad: list[BadRow] = field(default_factory=list)
    used_columns: list[str] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    missing_columns: list[str] = field(default_factory=list)
    lines: int = 0
    internationalised: int = 0
    utf8_local: list[str] = field(default_factory=list)


class ExtractError(ValueError):
    """The file cannot be imported at all (unreadable, no header, no address column)."""


def _join(*parts: str) -> str:
    return " ".join(p for p in parts if p)


def _entry(v: dict[str, str]) -> DirectoryEntry:
    mailbox_type = (v.get("type") or "PER").upper()
    id_type, id_pp = v.get("id_type", ""), v.get("id_pp", "")
    idnat = v.get("idnat", "") or (id_type + id_pp if id_type in ("0", "8") and id_pp else "")
    rpps = id_pp if id_type == "8" else ""
    adeli = id_pp if id_type == "0" else ""
    street_lines = [v.get("l2", ""), v.get("l3", ""),
                    _join(v.get("l4num", ""), v.get("l4comp", ""), v.get("l4type", ""),
                          v.get("l4lib", "")),
                    v.get("l5", "")]
    l6 = v.get("l6", "")
    postal = v.get("postal_code", "")
    city = l6[len(postal):].strip() if postal and l6.startswith(postal) else l6
    return DirectoryEntry(
        address=v["address"], type=mailbox_type, origin="national",
        given_name=v.get("given_name", ""), surname=v.get("surname", ""),
        idnat=idnat, rpps=rpps, adeli=adeli,
        profession_code=v.get("profession_code", ""),
        profession_label=v.get("profession_label", ""),
        specialty_code=v.get("specialty_code", ""), specialty_label=v.get("specialty_label", ""),
        structure_id=v.get("structure_id", ""),
        structure_name=v.get("structure_name", "") or v.get("trade_name", ""),
        service=v.get("service", ""), title=v.get("title", ""),
        street=", ".join(s for s in street_lines if s), postal_code=postal, city=city,
        department=v.get("department", ""),
        preferred_rank=int(v.get("preferred_rank", "0")),
    )


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    with path.open("r", encoding="utf-8", errors="strict", newline="") as fh:
        for number, line in enumerate(fh, start=1):
            yield number, line.rstrip("\r\n")


class ExtractReader:
    """Reads the header at once (so column problems show before any work), then streams the
    readable rows: a million-row file is never held in memory as entries."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.bad: list[BadRow] = []
        self.used_columns: list[str] = []
        self.ignored_columns: list[str] = []
        self.missing_columns: list[str] = []
        self.lines = 0
        self.internationalised = 0
        """Rows with an internationalised address (RFC 6531), all imported."""
        self.utf8_local: list[str] = []
        """Those of them with a UTF-8 local part: no ASCII form for LDAP ``mail``."""
        self._keys: list[str | None] = []
        self._width = 0
        try:
            with path.open("r", encoding="utf-8", errors="strict", newline="") as fh:
                header = fh.readline()
        except UnicodeDecodeError as exc:
            raise ExtractError(
                f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        except OSError as exc:
            raise ExtractError(f"{path}: cannot read: {exc.strerror}") from None
        if not header:
            raise ExtractError(f"{path}: empty file, expected a header row")
        names = header.rstrip("\r\n").split("|")
        for name in names:
            key = _KEYS.get(normalise_header(name))
            if key is None or key in self._keys:
                self.ignored_columns.append(name.strip())
                self._keys.append(None)
            else:
                self.used_columns.append(name.strip())
                self._keys.append(key)
        if "address" not in self._keys:
            raise ExtractError(
                f"{path}: no 'Adresse BAL' column in the header; columns found: "
                + ", ".join(n.strip() for n in names)
            )
        used = {normalise_header(c) for c in self.used_columns}
        self.missing_columns = [c for c in REAL_COLUMNS if normalise_header(c) not in used
                                and _KEYS.get(normalise_header(c))]
        self._width = len(names)

    def rows(self) -> Iterator[ParsedRow]:
        """The readable rows in file order; bad ones go to :attr:`bad` (first one of a
        duplicated address wins). Raises :class:`ExtractError` if the file stops being
        readable part-way."""
        seen: dict[str, int] = {}
        keys, width, bad = self._keys, self._width, self.bad
        try:
            lines = _lines(self.path)
            next(lines)
            for number, line in lines:
                self.lines += 1
                if not line.strip():
                    continue
                fields = line.split("|")
                if len(fields) != width:
                    bad.append(BadRow(number, f"{len(fields)} fields, header has {width}"))
                    continue
                values = {k: f.strip() for k, f in zip(keys, fields, strict=True)
                          if k and f.strip()}
                # RFC 6532 §3.1: internationalised addresses compared in NFC
                address = unicodedata.normalize("NFC", values.get("address", ""))
                values["address"] = address
                if not address:
                    bad.append(BadRow(number, "no address"))
                    continue
                if not valid_address(address):
                    bad.append(BadRow(number, f"invalid address {address!r}"))
                    continue
                mailbox_type = values.get("type", "PER").upper()
                if mailbox_type not in MAILBOX_TYPES:
                    bad.append(BadRow(number, f"unknown mailbox type {mailbox_type!r}"))
                    continue
                rank = values.get("preferred_rank", "0")
                # ASCII digits only: isdigit() alone accepts "²", which int() refuses
                if not (rank.isascii() and rank.isdigit()) or len(rank) > 4:
                    bad.append(BadRow(number, f"invalid preferred rank {rank!r}"))
                    continue
                low = address.lower()
                previous = seen.get(low)
                if previous is not None:
                    bad.append(BadRow(number, f"duplicate of line {previous} ({address})"))
                    continue
                seen[low] = number
                if not address.isascii():
                    self.internationalised += 1
                    if ascii_address(address) is None:
                        self.utf8_local.append(address)
                digest = hashlib.sha256((ENTRY_FORMAT + "\x1f" + "\x1f".join(
                    f"{k}={values[k]}" for k in sorted(values))).encode()
                ).hexdigest()[:32]
                yield ParsedRow(number, _entry(values), digest)
        except UnicodeDecodeError as exc:
            raise ExtractError(
                f"{self.path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        except OSError as exc:
            raise ExtractError(f"{self.path}: cannot read: {exc.strerror}") from None


def read_extract(path: Path) -> Extract:
    """Parses all of ``path``; raises :class:`ExtractError` if it cannot be imported at all."""
    reader = ExtractReader(path)
    out = Extract(used_columns=reader.used_columns, ignored_columns=reader.ignored_columns,
                  missing_columns=reader.missing_columns, bad=reader.bad)
    for parsed in reader.rows():
        out.rows[parsed.entry.address.lower()] = parsed
    out.lines = reader.lines
    out.internationalised, out.utf8_local = reader.internationalised, reader.utf8_local
    return out
