"""The sign-up form of the seed, checked field by field with messages in French.

Every field of the service's form: usual e-mail address, password and confirmation,
profession type, RPPS or ADELI, last and first name, company name (raison sociale), liberal
practice, profession, address 1 and 2, postal code, city, region, department, phone 1 and 2.
:func:`check_signup` returns the cleaned form or one message per wrong field, so the page can
show each message next to its field; the command line and any API use the same function.
A wrong RPPS/ADELI check key only warns: registers have had numbers with odd keys, and the
administrator checks the number against the register anyway at review.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from accounts.france import DEPARTMENTS, REGION_OF, REGIONS, department_of_postal_code
from accounts.password_policy import password_problem

PROFESSION_TYPES = (
    "Professionnel de santé",
    "Professionnel du médico-social",
    "Professionnel du social",
)
PROFESSIONS = (
    "Médecin", "Pharmacien", "Chirurgien-dentiste", "Sage-femme", "Infirmier",
    "Masseur-kinésithérapeute", "Pédicure-podologue", "Orthophoniste", "Orthoptiste",
    "Ergothérapeute", "Psychomotricien", "Manipulateur d'électroradiologie médicale",
    "Audioprothésiste", "Opticien-lunetier", "Diététicien", "Psychologue",
    "Assistant de service social", "Éducateur spécialisé", "Autre",
)
FIELDS = (
    "email", "password", "password_confirm", "profession_type", "rpps", "adeli", "surname",
    "given_name", "company", "liberal", "profession", "address1", "address2", "postal_code",
    "city", "region", "department", "phone1", "phone2",
)
MAX_TEXT = 128

# RFC 5322 dot-atom local part and a domain of LDH labels with at least one dot.
_EMAIL_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_NAME = re.compile(r"[^\W\d_]+(?:[ '’-][^\W\d_]+)*")
_PHONE_SEPARATORS = re.compile(r"[ .\-]")


@dataclass(frozen=True)
class SignupForm:
    """A checked sign-up: every value cleaned (trimmed, phones normalised)."""

    email: str
    password: str
    profession_type: str
    rpps: str | None
    adeli: str | None
    surname: str
    given_name: str
    company: str
    liberal: bool
    profession: str
    address1: str
    address2: str
    postal_code: str
    city: str
    region: str
    department: str
    phone1: str
    phone2: str

    @property
    def idnat(self) -> str:
        """The idNatPS: 8 + RPPS when there is one, else 0 + ADELI."""
        return f"8{self.rpps}" if self.rpps else f"0{self.adeli}"


@dataclass
class SignupCheck:
    """The outcome: ``form`` when there is no error; ``errors`` and ``warnings`` by field."""

    form: SignupForm | None
    errors: dict[str, str] = field(default_factory=dict)
    warnings: dict[str, str] = field(default_factory=dict)


def luhn_ok(digits: str) -> bool:
    """The Luhn key (the last digit) of an RPPS or ADELI number is right."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch)
        if i % 2 == 1:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def email_problem(value: str) -> str | None:
    """Why ``value`` is not an e-mail address one can write to, or None."""
    local, at, domain = value.rpartition("@")
    if not at or not local or not domain:
        return "Adresse e-mail invalide : elle doit être de la forme nom@domaine.fr."
    if len(value) > 254 or len(local) > 64:
        return "Adresse e-mail trop longue."
    if not _EMAIL_LOCAL.fullmatch(local):
        return f"Adresse e-mail invalide : la partie « {local} » avant le @ n'est pas valide."
    labels = domain.split(".")
    if len(labels) < 2 or not all(_LABEL.fullmatch(label) for label in labels) \
            or labels[-1].isdigit():
        return f"Adresse e-mail invalide : le domaine « {domain} » n'est pas valide."
    return None


def normalize_phone(value: str) -> str | None:
    """A French number as ``01 23 45 67 89`` (``+33``/``0033`` accepted), an international
    one as ``+CC…``, or None when it is not a telephone number."""
    raw = _PHONE_SEPARATORS.sub("", value.strip())
    raw = re.sub(r"\((\d)\)", "", raw)  # +33 (0)1 …
    if raw.startswith("0033"):
        raw = "+33" + raw[4:]
    if raw.startswith("+33"):
        raw = "0" + raw[3:]
    if re.fullmatch(r"0[1-9]\d{8}", raw):
        return " ".join(raw[i:i + 2] for i in range(0, 10, 2))
    if re.fullmatch(r"\+[1-9]\d{7,14}", raw):
        return raw
    return None


def _text(data: Mapping[str, str], name: str) -> str:
    return str(data.get(name, "") or "").strip()


def check_signup(data: Mapping[str, str], *, local_domains: tuple[str, ...] = ()) -> SignupCheck:
    """Checks a submitted sign-up form (field name → text) and says what is wrong where."""
    errors: dict[str, str] = {}
    warnings: dict[str, str] = {}
    v = {name: _text(data, name) for name in FIELDS}
    password = str(data.get("password", "") or "")

    email = v["email"].lower()
    if not email:
        errors["email"] = "L'adresse e-mail d'usage est obligatoire."
    elif problem := email_problem(email):
        errors["email"] = problem
    elif email.rpartition("@")[2] in {d.lower() for d in local_domains}:
        errors["email"] = ("Indiquez votre adresse e-mail habituelle, pas une adresse de "
                           "cette messagerie sécurisée.")

    for name, label in (("surname", "Le nom"), ("given_name", "Le prénom")):
        if not v[name]:
            errors[name] = f"{label} est obligatoire."
        elif len(v[name]) > MAX_TEXT or not _NAME.fullmatch(v[name]):
            errors[name] = (f"{label} ne peut contenir que des lettres, des espaces, des "
                            "traits d'union et des apostrophes.")

    if problem := password_problem(password, given_name=v["given_name"],
                                   surname=v["surname"], email=email):
        errors["password"] = problem
    if str(data.get("password_confirm", "") or "") != password:
        errors["password_confirm"] = "La confirmation ne correspond pas au mot de passe."  # noqa: S105

    if v["profession_type"] not in PROFESSION_TYPES:
        errors["profession_type"] = "Choisissez un type de profession dans la liste."
    if v["profession"] not in PROFESSIONS:
        errors["profession"] = "Choisissez une profession dans la liste."

    rpps, adeli = v["rpps"].replace(" ", ""), v["adeli"].replace(" ", "")
    if rpps and not (rpps.isascii() and rpps.isdigit() and len(rpps) == 11):
        errors["rpps"] = "Le numéro RPPS comporte exactement 11 chiffres."
    elif rpps and not luhn_ok(rpps):
        warnings["rpps"] = ("La clé de contrôle de ce numéro RPPS ne correspond pas : "
                            "vérifiez-le (la demande est tout de même acceptée).")
    if adeli and not (adeli.isascii() and adeli.isdigit() and len(adeli) == 9):
        errors["adeli"] = "Le numéro ADELI comporte exactement 9 chiffres."
    elif adeli and not luhn_ok(adeli):
        warnings["adeli"] = ("La clé de contrôle de ce numéro ADELI ne correspond pas : "
                             "vérifiez-le (la demande est tout de même acceptée).")
    if not rpps and not adeli:
        errors["rpps"] = "Indiquez votre numéro RPPS (11 chiffres) ou ADELI (9 chiffres)."

    liberal = v["liberal"].lower()
    if liberal not in {"oui", "non"}:
        errors["liberal"] = "Indiquez si vous avez une activité libérale (oui ou non)."

    for name, label in (("company", "La raison sociale"), ("address1", "L'adresse"),
                        ("address2", "Le complément d'adresse"), ("city", "La ville")):
        if len(v[name]) > 256 or any(ord(ch) < 0x20 for ch in v[name]):
            errors[name] = f"{label} est trop longue ou contient des caractères invalides."
    if not v["address1"]:
        errors["address1"] = "L'adresse est obligatoire."
    if not v["city"]:
        errors["city"] = "La ville est obligatoire."

    if v["region"] not in REGIONS:
        errors["region"] = "Choisissez une région dans la liste."
    department = v["department"].upper()
    if department not in DEPARTMENTS:
        errors["department"] = "Choisissez un département dans la liste."
    elif v["region"] in REGIONS and REGION_OF[department] != v["region"]:
        errors["department"] = (f"Le département {department} ({DEPARTMENTS[department]}) "
                                f"n'est pas dans la région {v['region']}.")
    postal = v["postal_code"].replace(" ", "")
    if not re.fullmatch(r"\d{5}", postal):
        errors["postal_code"] = "Le code postal comporte exactement 5 chiffres."
    elif department in DEPARTMENTS and department_of_postal_code(postal) != department:
        errors["postal_code"] = (f"Le code postal {postal} ne correspond pas au département "
                                 f"{department} ({DEPARTMENTS[department]}).")

    phones: dict[str, str] = {}
    for name in ("phone1", "phone2"):
        if not v[name]:
            if name == "phone1":
                errors[name] = "Le téléphone est obligatoire."
            phones[name] = ""
            continue
        normal = normalize_phone(v[name])
        if normal is None:
            errors[name] = ("Numéro de téléphone invalide : 10 chiffres commençant par 0 "
                            "(01 23 45 67 89) ou au format international (+33 1 23 45 67 89).")
        phones[name] = normal or ""

    if errors:
        return SignupCheck(None, errors, warnings)
    form = SignupForm(
        email=email, password=password, profession_type=v["profession_type"],
        rpps=rpps or None, adeli=adeli or None, surname=v["surname"],
        given_name=v["given_name"], company=v["company"], liberal=liberal == "oui",
        profession=v["profession"], address1=v["address1"], address2=v["address2"],
        postal_code=postal, city=v["city"], region=v["region"], department=department,
        phone1=phones["phone1"], phone2=phones["phone2"],
    )
    return SignupCheck(form, errors, warnings)
