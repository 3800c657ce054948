"""``mssante accounts org create|add-member|remove-member`` and ``accounts app-mode``: the
portal's rules at the command line, proofs with the operator as actor, refusals exit 2
naming the bad value."""

from __future__ import annotations

import asyncio
import getpass
from pathlib import Path

from config import load_settings
from storage import proofs
from storage.database import open_database
from tests.gateway.test_account_proofs import DOCTOR, ledger, mssante

OPERATOR = f"operator:{getpass.getuser()}"
ORG = "secretariat.cardio@mssante.test"
SECRETARY = "secretariat.martin@mssante.test"
APP = "dpi@mssante.test"


def org_proofs(tmp_path: Path) -> list[tuple[str, str | None, dict[str, object]]]:
    async def go() -> list[proofs.ProofRecord]:
        db = await open_database(load_settings(data_dir=tmp_path, env={}),
                                 may_create_key=True)
        try:
            async with db.read() as conn:
                return await proofs.get_by_message(conn, f"account:{ORG}")
        finally:
            await db.close()
    return [(r.kind, r.actor, r.details) for r in asyncio.run(go())]


def test_org_create_members_and_refusals(tmp_path: Path) -> None:
    assert mssante(tmp_path, "accounts", "add", DOCTOR, "--name", "Dr Martin",
                   "--idnat", "810000000002")[0] == 0
    assert mssante(tmp_path, "accounts", "add", SECRETARY, "--name", "Julie Petit",
                   "--idnat", "810000000010")[0] == 0
    code, out = mssante(tmp_path, "accounts", "org", "create", ORG, "--responsible", DOCTOR,
                        "--name", "Secrétariat de cardiologie")
    assert code == 0 and f"responsible {DOCTOR}" in out, out
    code, out = mssante(tmp_path, "accounts", "org", "add-member", ORG, SECRETARY,
                        "--rights", "lrsw", "--send-as")
    assert code == 0 and f"{SECRETARY} holds lrsw on {ORG} and may send as it" in out, out
    code, out = mssante(tmp_path, "accounts", "show", ORG)
    assert "type: ORG" in out
    code, out = mssante(tmp_path, "accounts", "org", "remove-member", ORG, SECRETARY)
    assert code == 0, out

    story = org_proofs(tmp_path)
    assert [(k, a) for k, a, _ in story] == [
        ("account-created", OPERATOR), ("delegation-granted", OPERATOR),
        ("delegation-granted", OPERATOR), ("delegation-revoked", OPERATOR)]
    assert story[0][2]["responsible"] == DOCTOR and story[1][2]["delegate"] == DOCTOR

    refusals = [
        (["org", "remove-member", ORG, DOCTOR], "est le responsable"),
        (["org", "remove-member", ORG, SECRETARY], "n'est pas membre"),
        (["org", "add-member", ORG, SECRETARY, "--rights", "lrz"], "'lrz'"),
        (["org", "add-member", ORG, "ghost@mssante.test"], "'ghost@mssante.test'"),
        (["org", "add-member", DOCTOR, SECRETARY], "n'est pas organisationnelle"),
        (["org", "add-member", ORG, DOCTOR, "--rights", "lrs"], "garde le droit de gérer"),
        (["org", "create", ORG, "--responsible", DOCTOR], "a déjà une boîte"),
        (["org", "create", "x@ailleurs.fr", "--responsible", DOCTOR], "'x@ailleurs.fr'"),
        (["org", "create", "autre@mssante.test", "--responsible", ORG],
         "doit être un professionnel"),
        (["org", "create", "autre@mssante.test", "--responsible", "nobody@mssante.test"],
         "'nobody@mssante.test'"),
        (["app-mode", DOCTOR, "send-only"], "n'est pas applicative"),
    ]
    for args, words in refusals:
        code, out = mssante(tmp_path, "accounts", *args)
        assert code == 2 and words in out, (args, out)


def test_app_mode(tmp_path: Path) -> None:
    assert mssante(tmp_path, "accounts", "add", APP, "--type", "APP", "--name", "DPI",
                   "--structure", "330000000")[0] == 0
    code, out = mssante(tmp_path, "accounts", "app-mode", APP, "send-only")
    assert code == 0 and out.strip() == f"{APP}: send-only", out
    code, out = mssante(tmp_path, "accounts", "app-mode", APP, "receive-only")
    assert code == 2 and "'receive-only'" in out, out
    assert ledger(tmp_path) == []  # neither DOCTOR nor SECRETARY touched


def test_app_mode_change_is_proved(tmp_path: Path) -> None:
    """Before: ``accounts app-mode`` changed whether a hospital system's mailbox accepts
    mail and the ledger said nothing (no proof at all under ``account:<app>``)."""
    assert mssante(tmp_path, "accounts", "add", APP, "--type", "APP", "--name", "DPI",
                   "--structure", "330000000")[0] == 0
    for mode in ("send-only", "send-only", "send-and-receive"):  # the second: no change
        assert mssante(tmp_path, "accounts", "app-mode", APP, mode)[0] == 0
    assert mssante(tmp_path, "accounts", "app-mode", APP, "receive-only")[0] == 2

    async def go() -> list[proofs.ProofRecord]:
        db = await open_database(load_settings(data_dir=tmp_path, env={}),
                                 may_create_key=True)
        try:
            async with db.read() as conn:
                return await proofs.get_by_message(conn, f"account:{APP}")
        finally:
            await db.close()
    changes = [(r.kind, r.actor, r.details) for r in asyncio.run(go())
               if r.kind == "account-changed"]
    assert changes == [
        ("account-changed", OPERATOR, {"account": APP, "setting": "app_mode",
                                       "from": "send-and-receive", "to": "send-only"}),
        ("account-changed", OPERATOR, {"account": APP, "setting": "app_mode",
                                       "from": "send-only", "to": "send-and-receive"})]
