"""``mssante accounts pending|show|approve|reject|portal-password|app-password`` on a real
database file, through the same functions as the portal; refusals exit 2 naming the value."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from email import message_from_bytes, policy
from pathlib import Path

from accounts.mailboxes import add_mailbox
from accounts.notify import outbox_for
from accounts.registrations import Registrar
from accounts.signup import check_signup
from config import load_settings
from storage.database import open_database
from tests.accounts.registration_data import signup_data

MSSANTE = str(Path(sys.executable).with_name("mssante"))


def cli(data_dir: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MSSANTE_")}
    env["MSSANTE_HOME"] = str(data_dir)
    return subprocess.run([MSSANTE, *args], env=env, capture_output=True, text=True,
                          timeout=120, input=stdin)


async def seed(data_dir: Path) -> None:
    """Two confirmed requests and one mailbox."""
    settings = load_settings(data_dir=data_dir, env={})
    db = await open_database(settings, may_create_key=True)
    try:
        registrar = Registrar(db, outbox_for(data_dir, "mssante.test"),
                              portal_url="https://portail.test")
        for email, given in (("helene.dupont@exemple.fr", "Hélène"),
                             ("paul.martin@exemple.fr", "Paul")):
            form = check_signup(signup_data(email=email, given_name=given,
                                            surname="Martin" if given == "Paul" else "Dupont"))
            assert form.form is not None
            await registrar.sign_up(form.form)
            reg = await registrar.find(email)
            path = sorted((data_dir / "outbox").glob("*.eml"))[-1]
            body = message_from_bytes(path.read_bytes(), policy=policy.default).get_body()
            assert body is not None
            token = re.search(r"jeton=([A-Za-z0-9_-]+)", body.get_content())
            assert token and reg.status == "unconfirmed"
            await registrar.confirm(token.group(1))
        await add_mailbox(db, "camille@mssante.test", type="PER", name="Camille Roux",
                          idnat="810000000009")
    finally:
        await db.close()


def test_review_from_the_command_line(tmp_path: Path) -> None:
    asyncio.run(seed(tmp_path))
    listed = cli(tmp_path, "accounts", "pending")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert len(lines) == 2 and "helene.dupont@mssante.test" in lines[0]

    shown = cli(tmp_path, "accounts", "show", "helene.dupont@exemple.fr")
    assert shown.returncode == 0 and "status: pending" in shown.stdout
    assert "password" not in shown.stdout

    taken = cli(tmp_path, "accounts", "approve", "helene.dupont@exemple.fr",
                "--address", "camille@mssante.test")
    assert taken.returncode == 2 and "camille@mssante.test" in taken.stderr
    approved = cli(tmp_path, "accounts", "approve", "1", "--by", "postmaster@mssante.test")
    assert approved.returncode == 0, approved.stderr
    assert "helene.dupont@mssante.test created" in approved.stdout
    again = cli(tmp_path, "accounts", "approve", "1")
    assert again.returncode == 2 and "déjà été acceptée" in again.stderr

    no_reason = cli(tmp_path, "accounts", "reject", "paul.martin@exemple.fr", "--reason", " ")
    assert no_reason.returncode == 2 and "motif" in no_reason.stderr
    rejected = cli(tmp_path, "accounts", "reject", "2", "--reason", "RPPS inconnu")
    assert rejected.returncode == 0, rejected.stderr
    unknown = cli(tmp_path, "accounts", "approve", "42")
    assert unknown.returncode == 2 and "42" in unknown.stderr

    mailbox = cli(tmp_path, "accounts", "show", "helene.dupont@mssante.test")
    assert "status: active" in mailbox.stdout
    assert "usual_email: helene.dupont@exemple.fr" in mailbox.stdout


def test_application_passwords_and_portal_password(tmp_path: Path) -> None:
    asyncio.run(seed(tmp_path))
    created = cli(tmp_path, "accounts", "app-password", "create", "camille@mssante.test",
                  "--label", "Téléphone")
    assert created.returncode == 0, created.stderr
    assert re.search(r"password \(shown once\): [a-z0-9-]{24}$", created.stdout.strip())
    number = created.stdout.split()[2]
    duplicate = cli(tmp_path, "accounts", "app-password", "create", "camille@mssante.test",
                    "--label", "Téléphone")
    assert duplicate.returncode == 2 and "Téléphone" in duplicate.stderr
    listed = cli(tmp_path, "accounts", "app-password", "list", "camille@mssante.test")
    assert f"{number}\tTéléphone\t" in listed.stdout and listed.stdout.endswith("never\n")
    revoked = cli(tmp_path, "accounts", "app-password", "revoke", "camille@mssante.test",
                  number)
    assert revoked.returncode == 0 and "revoked" in revoked.stdout
    twice = cli(tmp_path, "accounts", "app-password", "revoke", "camille@mssante.test",
                number)
    assert twice.returncode == 2 and "déjà révoqué" in twice.stderr
    other = cli(tmp_path, "accounts", "app-password", "revoke", "nobody@mssante.test", "1")
    assert other.returncode == 2 and "nobody@mssante.test" in other.stderr

    weak = cli(tmp_path, "accounts", "portal-password", "camille@mssante.test",
               "--usual-email", "camille@exemple.fr", "--password", "azerty123")
    assert weak.returncode == 2 and "majuscule" in weak.stderr
    named = cli(tmp_path, "accounts", "portal-password", "camille@mssante.test",
                "--usual-email", "camille@exemple.fr", "--password", "Zk-Roux-4471")
    assert named.returncode == 2 and "votre nom" in named.stderr
    ok = cli(tmp_path, "accounts", "portal-password", "camille@mssante.test",
             "--usual-email", "camille@exemple.fr", stdin="Tilleul-47!\nTilleul-47!\n")
    assert ok.returncode == 0, ok.stderr
    assert "sign-in codes go to camille@exemple.fr" in ok.stdout
