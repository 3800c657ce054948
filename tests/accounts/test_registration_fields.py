"""Every field of the sign-up form, with its French message (accounts/signup.py)."""

from __future__ import annotations

import pytest

from accounts.france import department_of_postal_code
from accounts.signup import check_signup, normalize_phone
from tests.accounts.registration_data import ADELI, RPPS, bad_key, signup_data


def test_a_complete_form_is_accepted_and_cleaned() -> None:
    result = check_signup(signup_data(email=" Helene.Dupont@Exemple.FR ",
                                      phone2="+33 6 12 34 56 78"))
    assert result.errors == {} and result.warnings == {}
    form = result.form
    assert form is not None
    assert form.email == "helene.dupont@exemple.fr"
    assert form.idnat == "8" + RPPS and form.liberal is True
    assert form.phone1 == "05 61 00 00 00" and form.phone2 == "06 12 34 56 78"


@pytest.mark.parametrize(("field", "value", "message"), [
    ("rpps", "1234", "11 chiffres"),
    ("rpps", "1000345678a", "11 chiffres"),
    ("adeli", "12345", "9 chiffres"),
    ("email", "pas-une-adresse", "nom@domaine.fr"),
    ("email", "a..b@exemple.fr", "avant le @"),
    ("email", "alice@localhost", "domaine"),
    ("email", "alice@exemple.123", "domaine"),
    ("email", "", "obligatoire"),
    ("phone1", "12 34", "Numéro de téléphone invalide"),
    ("phone1", "", "obligatoire"),
    ("phone2", "0012", "Numéro de téléphone invalide"),
    ("postal_code", "3100", "5 chiffres"),
    ("postal_code", "75001", "ne correspond pas au département 31 (Haute-Garonne)"),
    ("department", "99", "dans la liste"),
    ("region", "Atlantide", "dans la liste"),
    ("profession_type", "Astronaute", "dans la liste"),
    ("profession", "Druide", "dans la liste"),
    ("liberal", "peut-être", "oui ou non"),
    ("surname", "", "Le nom est obligatoire"),
    ("given_name", "J3an", "que des lettres"),
    ("address1", "", "obligatoire"),
    ("city", "", "obligatoire"),
    ("password_confirm", "autre", "ne correspond pas"),
])
def test_each_wrong_field_gets_its_own_message(field: str, value: str, message: str) -> None:
    result = check_signup(signup_data(**{field: value}))
    assert result.form is None
    assert set(result.errors) == {field}, result.errors
    assert message in result.errors[field]


def test_department_must_be_in_the_region() -> None:
    result = check_signup(signup_data(region="Bretagne"))
    assert result.errors == {"department": "Le département 31 (Haute-Garonne) n'est pas dans "
                                           "la région Bretagne."}


def test_rpps_or_adeli_is_required_and_adeli_alone_is_enough() -> None:
    result = check_signup(signup_data(rpps=""))
    assert "RPPS" in result.errors["rpps"] and "ADELI" in result.errors["rpps"]
    result = check_signup(signup_data(rpps="", adeli=ADELI))
    assert result.form is not None and result.form.idnat == "0" + ADELI


def test_a_bad_check_key_warns_but_does_not_refuse() -> None:
    result = check_signup(signup_data(rpps=bad_key(RPPS[:-1])))
    assert result.form is not None
    assert "clé de contrôle" in result.warnings["rpps"]
    result = check_signup(signup_data(rpps="", adeli=bad_key(ADELI[:-1])))
    assert result.form is not None and "ADELI" in result.warnings["adeli"]


def test_the_usual_address_may_not_be_one_of_ours() -> None:
    result = check_signup(signup_data(email="x@mssante.test"), local_domains=("mssante.test",))
    assert "habituelle" in result.errors["email"]


@pytest.mark.parametrize(("code", "department"), [
    ("31000", "31"), ("01000", "01"), ("20000", "2A"), ("20100", "2A"), ("20200", "2B"),
    ("20600", "2B"), ("97400", "974"), ("97600", "976"), ("97500", None), ("00000", None),
    ("7500", None), ("7500a", None),
])
def test_department_of_postal_code(code: str, department: str | None) -> None:
    assert department_of_postal_code(code) == department


def test_corsican_postal_code_matches_its_department() -> None:
    ok = check_signup(signup_data(postal_code="20000", department="2A", region="Corse"))
    assert ok.form is not None
    wrong = check_signup(signup_data(postal_code="20200", department="2A", region="Corse"))
    assert "2A" in wrong.errors["postal_code"]


@pytest.mark.parametrize(("raw", "normal"), [
    ("0561000000", "05 61 00 00 00"), ("05.61.00.00.00", "05 61 00 00 00"),
    ("+33 (0)5 61 00 00 00", "05 61 00 00 00"), ("0033561000000", "05 61 00 00 00"),
    ("+41 22 123 45 67", "+41221234567"), ("0061", None), ("00 00 00 00 00", None),
])
def test_phone_numbers(raw: str, normal: str | None) -> None:
    assert normalize_phone(raw) == normal
