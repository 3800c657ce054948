"""Synthetic extracts in the real 31-column layout, for tests, benchmarks and demos.

The real file names real people; a generated one lets the importer and the search be
exercised at full scale (a million rows) without touching personal data.
"""

from __future__ import annotations

import random
from pathlib import Path

from directory_ldap.extract import REAL_COLUMNS
from directory_ldap.folding import strip_accents

SURNAMES = ("MARTIN", "BERNARD", "DUBOIS", "THOMAS", "ROBERT", "RICHARD", "PETIT", "DURAND",
            "LEROY", "MOREAU", "SIMON", "LAURENT", "LEFEBVRE", "MICHEL", "GARCIA", "DAVID",
            "BERTRAND", "ROUX", "VINCENT", "FOURNIER", "MOREL", "GIRARD", "ANDRE", "MERCIER")
GIVEN = ("Marie", "Jean", "Pierre", "Sophie", "Camille", "Nicolas", "Julie", "Thomas",
         "Claire", "Antoine", "Lea", "Hugo", "Emma", "Louis", "Chloe", "Paul")
ACCENTED_GIVEN = ("Étienne", "Hélène", "Jérôme", "Cécile", "Anaïs", "Noël", "Gaëlle", "Frédéric")
"""Given names of every fourth nominative row with ``accents=True`` (bench/directory.py)."""
SPECIALTIES = (("SM26", "Qualifié en Médecine Générale"), ("SM04", "Cardiologie et maladies "
               "vasculaires"), ("SM15", "Dermatologie"), ("SM53", "Pédiatrie"),
               ("SM38", "Psychiatrie"), ("SM02", "Anesthésie-réanimation"))
PROFESSIONS = (("10", "Médecin"), ("60", "Infirmier"), ("40", "Chirurgien-Dentiste"),
               ("21", "Pharmacien"), ("50", "Sage-Femme"))
CITIES = (("31000", "TOULOUSE", "31"), ("75011", "PARIS", "75"), ("69003", "LYON", "69"),
          ("33000", "BORDEAUX", "33"), ("13005", "MARSEILLE", "13"), ("59000", "LILLE", "59"),
          ("44000", "NANTES", "44"), ("67000", "STRASBOURG", "67"))
DOMAINS = ("medecin.mssante.fr", "ch-toulouse.mssante.fr", "aphp.mssante.fr",
           "pharmacien.mssante.fr", "infirmier.mssante.fr")


def row(i: int, rng: random.Random, variant: int = 0, accents: bool = False) -> list[str]:
    """Row ``i`` of the sample (same ``i`` → same mailbox; ``variant`` changes its metadata;
    ``accents`` gives every fourth row an accented given name, as in the real extract)."""
    kind = "PER" if i % 10 < 8 else ("ORG" if i % 10 == 8 else "APP")
    surname, given = SURNAMES[i % len(SURNAMES)], GIVEN[(i // 7) % len(GIVEN)]
    if accents and i % 4 == 1:
        given = ACCENTED_GIVEN[(i // 4) % len(ACCENTED_GIVEN)]
    spec = SPECIALTIES[(i + variant) % len(SPECIALTIES)]
    prof = PROFESSIONS[(i // 3) % len(PROFESSIONS)]
    postal, city, dept = CITIES[(i // 11 + variant) % len(CITIES)]
    domain = DOMAINS[i % len(DOMAINS)]
    rpps = f"{10000000000 + i:011d}"
    if kind == "PER":
        address = f"{strip_accents(given).lower()}.{surname.lower()}.{i}@{domain}"
        ident = ["8", rpps, "8" + rpps]
        names = ["DR", surname, given]
        structure = ""
    else:
        address = f"{'secretariat' if kind == 'ORG' else 'dpi'}.{i}@{domain}"
        ident = ["", "", ""]
        names = ["", "", ""]
        structure = f"CENTRE HOSPITALIER {city} {i % 97}"
    values = {
        "Type de BAL": kind, "Adresse BAL": address, "Type Identifiant PP": ident[0],
        "Identifiant PP": ident[1], "Identification nationale PP": ident[2],
        "Type identifiant structure": "1" if structure else "",
        "Identification Structure": f"31{i % 1000000:07d}" if structure else "",
        "Service de rattachement": "Cardiologie" if kind == "ORG" else "",
        "Civilité d'exercice": names[0], "Nom d'exercice": names[1],
        "Prénom d'exercice": names[2], "Catégorie profession": "C" if kind == "PER" else "",
        "Libellé de catégorie profession": "Civil" if kind == "PER" else "",
        "Code Profession": prof[0] if kind == "PER" else "",
        "Libellé Profession": prof[1] if kind == "PER" else "",
        "Code savoir-faire": spec[0] if kind == "PER" else "",
        "Libellé savoir-faire": spec[1] if kind == "PER" else "",
        "Dématérialisation": rng.choice(("True", "False")) if variant < 0 else "False",
        "Raison Sociale structure BAL": structure,
        "Enseigne commerciale structure BAL": "",
        "L2COMPLEMENTLOCALISATION structure BAL": "Bâtiment B" if i % 5 == 0 else "",
        "L3COMPLEMENTDISTRIBUTION structure BAL": "",
        "L4NUMEROVOIE structure BAL": str(1 + i % 120),
        "L4COMPLEMENTNUMEROVOIE structure BAL": "",
        "NL4TYPEVOIE structure BAL": "R",
        "L4LIBELLEVOIE structure BAL": "de la République",
        "L5LIEUDITMENTION structure BAL": "",
        "L6LIGNEACHEMINEMENT structure BAL": f"{postal} {city}",
        "Code postal structure BAL": postal, "Département structure BAL": dept,
        "Pays structure BAL": "France",
    }
    return [values[c] for c in REAL_COLUMNS]


def write_sample(path: Path, rows: int, *, variant_of: set[int] | None = None,
                 skip: set[int] | None = None, start: int = 0,
                 extra_lines: list[str] | None = None, seed: int = 7,
                 accents: bool = False) -> None:
    """Writes ``rows`` mailboxes numbered from ``start``; ``variant_of`` rows get changed
    metadata, ``skip`` rows are left out, ``extra_lines`` are appended verbatim."""
    rng = random.Random(seed)
    variant_of, skip = variant_of or set(), skip or set()
    with path.open("w", encoding="utf-8", newline="") as fh:
        fh.write("|".join(REAL_COLUMNS) + "\n")
        for i in range(start, start + rows):
            if i in skip:
                continue
            fh.write("|".join(row(i, rng, 1 if i in variant_of else 0, accents)) + "\n")
        for line in extra_lines or []:
            fh.write(line + "\n")
