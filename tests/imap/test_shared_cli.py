"""``mssante delegations grant|revoke|list`` and ``mssante accounts mdn`` on a real database."""

from __future__ import annotations

import asyncio
from pathlib import Path

from click.testing import CliRunner

import gateway.commands.mdn  # noqa: F401 - adds "mdn" to the accounts group
from accounts import delegations
from accounts.mailboxes import add_mailbox
from config import load_settings
from gateway.commands.accounts import command as accounts_command
from gateway.commands.delegations import command as delegations_command
from gateway.context import CliContext
from storage import accounts as account_rows
from storage.database import open_database

ORG = "secretariat@mssante.test"
ALICE = "alice@mssante.test"
BOB = "bob@mssante.test"


def run(tmp_path: Path, group: str, *args: str) -> tuple[int, str]:
    command = delegations_command if group == "delegations" else accounts_command
    result = CliRunner().invoke(command, list(args), obj=CliContext(config_file=None,
                                                                     data_dir=tmp_path))
    return result.exit_code, result.output


def setup(tmp_path: Path) -> None:
    async def go() -> None:
        settings = load_settings(data_dir=tmp_path, env={})
        db = await open_database(settings, may_create_key=True)
        try:
            await add_mailbox(db, ORG, type="ORG", name="Secretariat")
            await add_mailbox(db, ALICE, type="PER", name="Dr Alice", idnat="810000000002")
            await add_mailbox(db, BOB, type="PER", name="Dr Bob", idnat="810000000001")
        finally:
            await db.close()
    asyncio.run(go())


def state(tmp_path: Path) -> tuple[delegations.DelegationList, str]:
    async def go() -> tuple[delegations.DelegationList, str]:
        settings = load_settings(data_dir=tmp_path, env={})
        db = await open_database(settings, may_create_key=True)
        try:
            found = await delegations.list_for(db, ORG)
            async with db.read() as conn:
                alice = await account_rows.get_by_address(conn, ALICE)
            assert alice is not None
            return found, alice.mdn_policy
        finally:
            await db.close()
    return asyncio.run(go())


def test_grant_list_revoke(tmp_path: Path) -> None:
    setup(tmp_path)
    code, out = run(tmp_path, "delegations", "grant", ORG, ALICE, "--rights", "srl")
    assert code == 0, out
    assert f"{ALICE} holds lrs on {ORG}" in out
    code, out = run(tmp_path, "delegations", "grant", ORG, BOB.upper(), "--rights",
                    "lrswitea", "--send-as")
    assert code == 0 and "may send as it" in out
    found, _ = state(tmp_path)
    assert [(d.delegate, d.rights, d.can_send_as) for d in found.given] == [
        (ALICE, "lrs", False), (BOB, "lrswitea", True)]
    code, out = run(tmp_path, "delegations", "list", ALICE)
    assert out.strip() == f"{ORG}\t{ALICE}\tlrs\t-"
    code, out = run(tmp_path, "delegations", "revoke", ORG, ALICE)
    assert code == 0
    found, _ = state(tmp_path)
    assert [d.delegate for d in found.given] == [BOB]


def test_refusals_name_the_value(tmp_path: Path) -> None:
    setup(tmp_path)
    code, out = run(tmp_path, "delegations", "grant", ORG, ALICE, "--rights", "lrz")
    assert code == 2 and "'z'" in out and "RFC 4314" in out
    code, out = run(tmp_path, "delegations", "grant", ORG, "nobody@mssante.test")
    assert code == 2 and "'nobody@mssante.test' has no mailbox" in out
    code, out = run(tmp_path, "delegations", "grant", ORG, ORG)
    assert code == 2 and "is the owner" in out
    code, out = run(tmp_path, "delegations", "revoke", ORG, BOB)
    assert code == 2 and f"'{BOB}' holds no delegation on '{ORG}'" in out
    code, out = run(tmp_path, "delegations", "list", "nobody")
    assert code == 2 and "'nobody'" in out


def test_managers_rule(tmp_path: Path) -> None:
    """Only the owner and delegates holding "a" may grant (RFC 4314 §2.1 administer)."""
    setup(tmp_path)

    async def go() -> None:
        settings = load_settings(data_dir=tmp_path, env={})
        db = await open_database(settings, may_create_key=True)
        try:
            await delegations.grant(db, ORG, BOB, "lrsa")
            await delegations.grant(db, ORG, ALICE, "lrs", by=BOB)
            try:
                await delegations.grant(db, ORG, ALICE, "lrswi", by=ALICE)
            except delegations.DelegationRefused as exc:
                assert "only the owner and delegates holding the 'a' right" in str(exc)
            else:
                raise AssertionError("a delegate without 'a' granted rights")
            assert (await delegations.list_for(db, ALICE)).received[0].rights == "lrs"
        finally:
            await db.close()
    asyncio.run(go())


def test_accounts_mdn_policy(tmp_path: Path) -> None:
    setup(tmp_path)
    # The default for MSSanté: the receipt at opening the service promises (issue 11).
    assert state(tmp_path)[1] == "always"
    code, out = run(tmp_path, "accounts", "mdn", ALICE, "ask")
    assert code == 0 and "read receipts ask" in out
    assert state(tmp_path)[1] == "ask"
    code, out = run(tmp_path, "accounts", "mdn", ALICE, "sometimes")
    assert code == 2 and "'sometimes'" in out
    code, out = run(tmp_path, "accounts", "mdn", "ghost@mssante.test", "never")
    assert code == 2 and "'ghost@mssante.test'" in out
