"""A valid sign-up form, and numbers with right or wrong check keys, for the tests."""

from __future__ import annotations

from accounts.signup import luhn_ok


def with_key(prefix: str) -> str:
    """``prefix`` followed by the Luhn key that makes it valid."""
    for digit in "0123456789":
        if luhn_ok(prefix + digit):
            return prefix + digit
    raise AssertionError("no Luhn key")


def bad_key(prefix: str) -> str:
    good = with_key(prefix)
    return good[:-1] + str((int(good[-1]) + 1) % 10)


RPPS = with_key("1000345678")
ADELI = with_key("31100123")


def signup_data(**changes: str) -> dict[str, str]:
    data = {
        "email": "helene.dupont@exemple.fr",
        "password": "Vx7#quarante",
        "password_confirm": "Vx7#quarante",
        "profession_type": "Professionnel de santé",
        "rpps": RPPS,
        "adeli": "",
        "surname": "Dupont",
        "given_name": "Hélène",
        "company": "Cabinet des Carmes",
        "liberal": "oui",
        "profession": "Médecin",
        "address1": "3 place des Carmes",
        "address2": "",
        "postal_code": "31000",
        "city": "Toulouse",
        "region": "Occitanie",
        "department": "31",
        "phone1": "05 61 00 00 00",
        "phone2": "",
    }
    data.update(changes)
    return data
