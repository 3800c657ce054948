"""The national identifier of a health professional (idNatPS) and of a structure.

The idNatPS is what the ANS directory (RPPS extract), CPS cards and Pro Santé Connect tokens
use to name a professional. Its first character says which register the rest comes from
(ANS "Annexe transverse – Source des données métier", nomenclature TRE_G08):

* ``8`` followed by the 11-digit RPPS number — 12 characters (doctors, pharmacists, …);
* ``0`` followed by the 9-digit ADELI number — 10 characters (professions still under ADELI).

Only these two forms name a person in MSSanté; anything else is refused here, once, so that
every layer (certificates, accounts, directory) agrees on what a valid identifier is.

A structure (FINESS, SIRET) identifies the organisation behind an applicative mailbox:
FINESS numbers are 9 characters (digits, with ``2A``/``2B`` for Corsica), SIRET 14 digits.
"""

from __future__ import annotations

import re

_RPPS_IDNAT = re.compile(r"8[0-9]{11}")
_ADELI_IDNAT = re.compile(r"0[0-9]{9}")
_FINESS = re.compile(r"[0-9](?:[0-9]|A|B)[0-9]{7}")
_SIRET = re.compile(r"[0-9]{14}")


def idnat_problem(value: str) -> str | None:
    """Why ``value`` is not a valid idNatPS, or ``None`` when it is."""
    if _RPPS_IDNAT.fullmatch(value) or _ADELI_IDNAT.fullmatch(value):
        return None
    return (
        f"idNatPS {value!r} is not valid: expected 8 followed by the 11-digit RPPS number "
        "(12 digits) or 0 followed by the 9-digit ADELI number (10 digits)"
    )


def is_valid_idnat(value: str) -> bool:
    """True when ``value`` is an RPPS-based or ADELI-based idNatPS."""
    return idnat_problem(value) is None


def structure_problem(value: str) -> str | None:
    """Why ``value`` is not a structure identifier (FINESS or SIRET), or ``None``."""
    if _FINESS.fullmatch(value) or _SIRET.fullmatch(value):
        return None
    return (
        f"structure identifier {value!r} is not valid: expected a 9-character FINESS number "
        "or a 14-digit SIRET number"
    )
