"""Every operator command that changes an account or a delegation leaves a proof.

Before: ``mssante accounts add|status``, ``mssante delegations grant|revoke`` changed the
database and the ledger said nothing: who suspended a doctor's mailbox, or who let a
secretary send in a doctor's name, could not be shown. Now each change appends one proof
in the same transaction, naming the operator (``operator:<unix user>``); a refused change
leaves none. Account proofs are filed under ``account:<address>`` so that
``mssante proofs show account:<address>`` lists an account's history.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import re
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from config import load_settings
from gateway.cli import main
from storage import proofs
from storage.database import open_database

DOCTOR = "dr.martin@mssante.test"
SECRETARY = "secretariat.martin@mssante.test"
OPERATOR = f"operator:{getpass.getuser()}"


def mssante(tmp_path: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["--data-dir", str(tmp_path), *args])
    return result.exit_code, result.output


def ledger(tmp_path: Path) -> list[proofs.ProofRecord]:
    async def go() -> list[proofs.ProofRecord]:
        db = await open_database(load_settings(data_dir=tmp_path, env={}),
                                 may_create_key=True)
        try:
            async with db.read() as conn:
                out: list[proofs.ProofRecord] = []
                for address in (DOCTOR, SECRETARY):
                    out += await proofs.get_by_message(conn, f"account:{address}")
                return sorted(out, key=lambda r: r.seq)
        finally:
            await db.close()
    return asyncio.run(go())


def kinds(records: list[proofs.ProofRecord]) -> list[tuple[str, str | None, str | None]]:
    return [(r.kind, r.message_ref, r.actor) for r in records]


def test_account_life_cycle_and_credentials_are_proved(tmp_path: Path) -> None:
    code, out = mssante(tmp_path, "accounts", "add", DOCTOR, "--name", "Dr Martin",
                        "--idnat", "810000000002")
    assert code == 0, out
    ref = f"account:{DOCTOR}"
    created = ledger(tmp_path)
    assert kinds(created) == [("account-created", ref, OPERATOR),
                              ("credential-added", ref, OPERATOR)]
    assert created[0].details["type"] == "PER"
    assert created[1].details["kind"] == "app_password"
    credential_id = created[1].details["credential_id"]
    assert isinstance(credential_id, int)
    assert not re.search(r"[a-z0-9]{4}-[a-z0-9]{4}-", json.dumps(created[1].details))

    for status in ("suspended", "active", "closed"):
        code, out = mssante(tmp_path, "accounts", "status", DOCTOR, status)
        assert code == 0, out
    code, out = mssante(tmp_path, "accounts", "status", DOCTOR, "closed")  # no change
    assert code == 0, out
    code, out = mssante(tmp_path, "accounts", "status", DOCTOR, "frozen")
    assert code == 2, out
    records = ledger(tmp_path)
    assert [k for k, _, _ in kinds(records)][2:] == [
        "account-suspended", "account-reactivated", "account-closed"]
    assert records[2].details == {"account": DOCTOR, "from": "active", "to": "suspended"}

    code, out = mssante(tmp_path, "accounts", "status", DOCTOR, "active")
    assert code == 2 and "closed" in out and "never reopened" in out, out
    code, out = mssante(tmp_path, "accounts", "app-password", "create", DOCTOR,
                        "--label", "phone")
    assert code == 0, out
    new_id = int(out.split("application password ")[1].split()[0])
    code, out = mssante(tmp_path, "accounts", "app-password", "revoke", DOCTOR, str(new_id))
    assert code == 0, out
    code, out = mssante(tmp_path, "accounts", "app-password", "revoke", DOCTOR, str(new_id))
    assert code == 2 and str(new_id) in out
    tail = ledger(tmp_path)[-2:]
    assert kinds(tail) == [("credential-added", ref, OPERATOR),
                           ("credential-revoked", ref, OPERATOR)]
    assert tail[0].details["label"] == "phone" and tail[1].details["credential_id"] == new_id


def test_delegations_are_proved_granted_changed_revoked(tmp_path: Path) -> None:
    mssante(tmp_path, "accounts", "add", DOCTOR, "--name", "Dr Martin", "--idnat",
            "810000000002")
    mssante(tmp_path, "accounts", "add", SECRETARY, "--type", "ORG", "--name", "Secretariat")
    before = len(ledger(tmp_path))
    steps: list[list[str]] = [
        ["delegations", "grant", DOCTOR, SECRETARY, "--rights", "lrs"],
        ["delegations", "grant", DOCTOR, SECRETARY, "--rights", "lrsw", "--send-as"],
        ["delegations", "revoke", DOCTOR, SECRETARY],
    ]
    for args in steps:
        code, out = mssante(tmp_path, *args)
        assert code == 0, out
    code, out = mssante(tmp_path, "delegations", "revoke", DOCTOR, SECRETARY)
    assert code == 2, out
    records = ledger(tmp_path)[before:]
    assert [(r.kind, r.actor) for r in records] == [
        ("delegation-granted", OPERATOR), ("delegation-changed", OPERATOR),
        ("delegation-revoked", OPERATOR)]
    assert {r.message_ref for r in records} == {f"account:{DOCTOR}"}
    details: list[dict[str, Any]] = [r.details for r in records]
    assert details[0] == {"account": DOCTOR, "delegate": SECRETARY, "rights": "lrs",
                          "send_as": False}
    assert details[1]["before"] == {"rights": "lrs", "send_as": False}
    assert details[1]["rights"] == "lrsw" and details[1]["send_as"] is True
    assert details[2] == {"account": DOCTOR, "delegate": SECRETARY}

    code, out = mssante(tmp_path, "proofs", "show", f"account:{DOCTOR}")
    assert code == 0, out
    assert "delegation-revoked" in out or "delegation revoked" in out


def test_notice_settings_and_portal_password_are_proved(tmp_path: Path) -> None:
    """Before: ``accounts mdn``, ``accounts delivery-notice`` and ``accounts
    portal-password`` changed the account (read receipts sent or not, a password replaced)
    without a proof."""
    import gateway.commands.mdn  # noqa: F401, PLC0415 - adds mdn and delivery-notice
    assert mssante(tmp_path, "accounts", "add", DOCTOR, "--name", "Dr Martin", "--idnat",
                   "810000000002")[0] == 0
    before = len(ledger(tmp_path))
    for args in (["mdn", DOCTOR, "never"], ["mdn", DOCTOR, "never"], ["mdn", DOCTOR],
                 ["delivery-notice", DOCTOR, "always"]):
        code, out = mssante(tmp_path, "accounts", *args)
        assert code == 0, out
    changes = [(r.kind, r.actor, r.details) for r in ledger(tmp_path)[before:]]
    assert changes == [
        ("account-changed", OPERATOR, {"account": DOCTOR, "setting": "mdn_policy",
                                       "from": "always", "to": "never"}),
        ("account-changed", OPERATOR, {"account": DOCTOR, "setting": "delivery_notice",
                                       "from": "asked", "to": "always"})]

    before = len(ledger(tmp_path))
    for _ in range(2):
        code, out = mssante(tmp_path, "accounts", "portal-password", DOCTOR,
                            "--usual-email", "martin@exemple.fr",
                            "--password", "Vx7#quarante-deux")
        assert code == 0, out
    records = ledger(tmp_path)[before:]
    assert [(r.kind, r.actor) for r in records] == [
        ("credential-added", OPERATOR), ("account-changed", OPERATOR),
        ("credential-revoked", OPERATOR), ("credential-added", OPERATOR)]
    assert records[0].details["kind"] == "password" and records[0].details["reason"] == "set"
    assert records[1].details == {"account": DOCTOR, "setting": "usual_email"}
    assert records[2].details["credential_id"] == records[0].details["credential_id"]
    assert "quarante" not in json.dumps([r.details for r in records])
    assert "exemple.fr" not in json.dumps([r.details for r in records])
