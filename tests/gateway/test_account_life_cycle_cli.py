"""``mssante accounts list|suspend|reactivate|close``: the portal's rules at the command
line, each change proved with the operator as actor, refusals exit 2 naming the value."""

from __future__ import annotations

import getpass
from pathlib import Path

from tests.gateway.test_account_proofs import DOCTOR, ledger, mssante

OPERATOR = f"operator:{getpass.getuser()}"
NURSE = "infirmier.durand@mssante.test"


def test_list_search_and_life_cycle(tmp_path: Path) -> None:
    assert mssante(tmp_path, "accounts", "add", DOCTOR, "--name", "Dr Hélène Martin",
                   "--idnat", "810000000002")[0] == 0
    assert mssante(tmp_path, "accounts", "add", NURSE, "--name", "Paul Durand",
                   "--idnat", "810000000010")[0] == 0
    code, out = mssante(tmp_path, "accounts", "list", "--search", "martin")
    assert code == 0 and DOCTOR in out and NURSE not in out, out
    code, out = mssante(tmp_path, "accounts", "list", "--search", "DURAND")
    assert code == 0 and NURSE in out and DOCTOR not in out, out

    code, out = mssante(tmp_path, "accounts", "suspend", DOCTOR)
    assert code == 0 and out.strip() == f"{DOCTOR}: suspended", out
    code, out = mssante(tmp_path, "accounts", "list", "--status", "suspended")
    assert code == 0 and DOCTOR in out and NURSE not in out, out
    code, out = mssante(tmp_path, "accounts", "suspend", DOCTOR)
    assert code == 2 and "seule une boîte active peut être suspendue" in out, out
    code, out = mssante(tmp_path, "accounts", "reactivate", DOCTOR)
    assert code == 0 and out.strip() == f"{DOCTOR}: active", out
    code, out = mssante(tmp_path, "accounts", "close", DOCTOR)
    assert code == 0 and out.strip() == f"{DOCTOR}: closed", out
    code, out = mssante(tmp_path, "accounts", "reactivate", DOCTOR)
    assert code == 2 and "fermée" in out and DOCTOR in out, out

    records = [r for r in ledger(tmp_path) if r.message_ref == f"account:{DOCTOR}"]
    assert [(r.kind, r.actor) for r in records][-3:] == [
        ("account-suspended", OPERATOR), ("account-reactivated", OPERATOR),
        ("account-closed", OPERATOR)]


def test_refusals_exit_2_naming_the_value(tmp_path: Path) -> None:
    code, out = mssante(tmp_path, "accounts", "close", "ghost@mssante.test")
    assert code == 2 and "'ghost@mssante.test'" in out, out
    code, out = mssante(tmp_path, "accounts", "list", "--status", "frozen")
    assert code == 2 and "'frozen'" in out, out
