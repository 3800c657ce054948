"""Checks of the national identifiers of health professionals.

idNatPS is the national identifier used by IGC-Santé certificates and the directory:
``8`` followed by the 11-digit RPPS number, or ``0`` followed by the 9-digit ADELI number
(ANS, "Identifiants des personnes physiques"). Only the form is checked: test identifiers
issued by the ANS for interoperability do not all satisfy the RPPS check digit.
"""

from __future__ import annotations

import re

_IDNAT = re.compile(r"^(?:8\d{11}|0\d{9})$")


def idnat_problem(idnat: str) -> str | None:
    """None when ``idnat`` is well formed, else a sentence saying what is wrong."""
    if not _IDNAT.match(idnat):
        return "an idNatPS is 8 followed by the 11-digit RPPS, or 0 followed by the 9-digit ADELI"
    return None
