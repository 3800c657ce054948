"""The password policy of the portal password: one function decides, for every front-end.

The seed's rule (at least 7 characters, letters and digits, at least one upper-case letter
or one non-alphanumeric character) lets ``Azerty123`` through, so beyond it a password must
not be one of the frequent passwords of the bundled list (``data/common_passwords.txt``,
compared case-insensitively, also without trailing digits and signs such as ``Soleil2024!``),
nor contain the holder's first name, last name or the local part of the e-mail address
(accents and case folded), which are the first guesses of anyone who knows the person.
The portal, the command line and any API call :func:`password_problem`; its messages are in
French because people read them in the sign-up form.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from importlib import resources

MIN_LENGTH = 7
MAX_LENGTH = 256
"""Longer is pointless and only costs hashing time."""
MIN_PART = 3
"""Name parts shorter than this (``Li``, ``Ng``) would refuse too many good passwords."""


@functools.cache
def common_passwords() -> frozenset[str]:
    """The bundled list, lower-cased (read once)."""
    text = resources.files("accounts").joinpath("data/common_passwords.txt").read_text("utf-8")
    return frozenset(line.strip().lower() for line in text.splitlines()
                     if line.strip() and not line.startswith("#"))


def fold(text: str) -> str:
    """Lower case without accents: ``Hélène`` → ``helene``."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower()


def _personal_parts(given_name: str, surname: str, email: str) -> set[str]:
    local = email.rpartition("@")[0] if "@" in email else email
    parts: set[str] = set()
    for value in (given_name, surname, local):
        folded = fold(value)
        for piece in [folded, *re.split(r"[^a-z0-9]+", folded)]:
            piece = piece.strip()
            if len(piece) >= MIN_PART:
                parts.add(piece)
    return parts


def password_problem(password: str, *, given_name: str = "", surname: str = "",
                     email: str = "") -> str | None:
    """Why ``password`` is refused (a French sentence), or None when it is accepted."""
    if len(password) < MIN_LENGTH:
        return f"Le mot de passe doit comporter au minimum {MIN_LENGTH} caractères."
    if len(password) > MAX_LENGTH:
        return f"Le mot de passe ne peut pas dépasser {MAX_LENGTH} caractères."
    if not any(ch.isalpha() for ch in password) or not any(ch.isdigit() for ch in password):
        return "Le mot de passe doit mélanger des lettres et des chiffres."
    if not any(ch.isupper() or not ch.isalnum() for ch in password):
        return ("Le mot de passe doit contenir au moins une majuscule ou un caractère "
                "non alphanumérique (par exemple & ; % !).")
    lowered = password.lower()
    stripped = re.sub(r"[\W\d_]+$", "", lowered)
    common = common_passwords()
    if lowered in common or stripped in common or fold(lowered) in common:
        return ("Ce mot de passe fait partie des mots de passe les plus courants : "
                "choisissez-en un autre.")
    folded = fold(password)
    for part in _personal_parts(given_name, surname, email):
        if part in folded:
            return ("Le mot de passe ne doit contenir ni votre nom, ni votre prénom, ni la "
                    "partie de votre adresse e-mail avant le @.")
    return None
