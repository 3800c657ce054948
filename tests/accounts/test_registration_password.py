"""The password policy: the seed's rules, the bundled list, the holder's names."""

from __future__ import annotations

import pytest

from accounts.password_policy import common_passwords, password_problem


def test_the_bundled_list_is_large_enough() -> None:
    assert len(common_passwords()) >= 1000
    assert {"azerty123", "motdepasse", "soleil", "password1"} <= common_passwords()


@pytest.mark.parametrize(("password", "message"), [
    ("Ab1!", "au minimum 7 caractères"),
    ("Abcdefgh!", "lettres et des chiffres"),
    ("12345678!", "lettres et des chiffres"),
    ("abcdef12", "majuscule ou un caractère non alphanumérique"),
    ("Azerty123", "les plus courants"),
    ("Soleil2024!", "les plus courants"),
    ("MotDePasse1", "les plus courants"),
    ("x" * 250 + "A1" + "y" * 10, "dépasser 256"),
])
def test_refused_passwords_say_why(password: str, message: str) -> None:
    problem = password_problem(password)
    assert problem is not None and message in problem


@pytest.mark.parametrize("password", ["Helene#2026x", "xDUPONT-9k", "K9!hdupont", "Rz8-Hélène"])
def test_names_and_email_local_part_are_refused(password: str) -> None:
    problem = password_problem(password, given_name="Hélène", surname="Dupont",
                               email="h.dupont@exemple.fr")
    assert problem is not None and "votre nom" in problem


def test_good_passwords_pass() -> None:
    for password in ("Vx7#quarante", "tulipe-Orage-42", "k3!rbzqwmt"):
        assert password_problem(password, given_name="Hélène", surname="Dupont",
                                email="h.dupont@exemple.fr") is None
    # short name parts do not forbid everything containing them
    assert password_problem("Lixt7#merou", given_name="Li", surname="Ng") is None
