"""System e-mails through the notification smarthost: a real aiosmtpd server with TLS on
loopback (STARTTLS with AUTH, implicit TLS), never without TLS; a smarthost outage
queues the message on disk and a later retry delivers it; logs carry no content."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope

from accounts.notify import Outbox, SmarthostNotifier, notifier_for
from config import Settings, load_settings
from tests.fixtures.gateway import RunningGateway, free_port, gateway_settings, running_gateway
from tests.fixtures.pki import DevPkiBundle
from tests.web.portal_client import form_token, portal
from tests.web.test_portal_mailboxes import DOCTOR_PW, person

USER, PASSWORD = "portail", "s3cret-smarthost"


class Collect:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        self.messages.append((str(envelope.mail_from), list(envelope.rcpt_tos),
                              envelope.content))
        return "250 2.0.0 OK"


def check_login(_server: Any, _session: Any, _envelope: Any, _mechanism: str,
                auth_data: Any) -> AuthResult:
    ok = (auth_data.login, auth_data.password) == (USER.encode(), PASSWORD.encode())
    return AuthResult(success=ok)


def server_context(pki: DevPkiBundle) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(pki.peer_server.cert_file, pki.peer_server.key_file)
    return ctx


@contextmanager
def smarthost(pki: DevPkiBundle, mode: str, port: int | None = None,
              ) -> Iterator[tuple[Collect, int]]:
    handler = Collect()
    port = port or free_port()
    kwargs: dict[str, Any] = {}
    if mode == "starttls":
        kwargs = {"tls_context": server_context(pki), "require_starttls": True,
                  "authenticator": check_login, "auth_require_tls": True}
    elif mode == "implicit":
        kwargs = {"ssl_context": server_context(pki)}
    controller = Controller(handler, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


def notify_settings(tmp_path: Path, pki: DevPkiBundle, port: int, tls: str,
                    auth: bool = False) -> Settings:
    password_file = tmp_path / "smarthost.password"
    password_file.write_text(PASSWORD + "\n")
    notify: dict[str, Any] = {"smarthost": "127.0.0.1", "port": port, "tls": tls,
                              "ca_file": str(pki.settings.pki_dir / "ca.pem"),
                              "from_address": "portail@mssante.test", "timeout": 5}
    if auth:
        notify |= {"username": USER, "password_file": str(password_file)}
    return load_settings(data_dir=tmp_path / "data", env={}, overrides={"notify": notify})


@pytest.fixture
def quiet_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.INFO, logger="mssante.notify")
    yield caplog


async def test_starttls_with_auth_delivers_and_empties_the_queue(
    tmp_path: Path, dev_pki: DevPkiBundle, quiet_logs: pytest.LogCaptureFixture,
) -> None:
    with smarthost(dev_pki, "starttls") as (collected, port):
        notifier = notifier_for(notify_settings(tmp_path, dev_pki, port, "starttls", True))
        assert isinstance(notifier, SmarthostNotifier)
        await notifier.send("alice@exemple.fr", "Votre code : 123456", "Code 123456\n",
                            kind="login-code")
    [(sender, rcpts, raw)] = collected.messages
    assert (sender, rcpts) == ("portail@mssante.test", ["alice@exemple.fr"])
    msg = message_from_bytes(raw, policy=policy.default)
    assert msg["Subject"] == "Votre code : 123456" and msg["Auto-Submitted"] == "auto-generated"
    assert notifier.queued() == []
    assert not (tmp_path / "data" / "outbox").exists()
    assert "123456" not in quiet_logs.text and "alice@exemple.fr" not in quiet_logs.text


async def test_implicit_tls(tmp_path: Path, dev_pki: DevPkiBundle) -> None:
    with smarthost(dev_pki, "implicit") as (collected, port):
        notifier = notifier_for(notify_settings(tmp_path, dev_pki, port, "implicit"))
        await notifier.send("bob@exemple.fr", "Demande reçue", "Bonjour\n", kind="notice")
    assert [rcpts for _s, rcpts, _r in collected.messages] == [["bob@exemple.fr"]]


async def test_outage_queues_then_retry_delivers(
    tmp_path: Path, dev_pki: DevPkiBundle, quiet_logs: pytest.LogCaptureFixture,
) -> None:
    port = free_port()
    notifier = notifier_for(notify_settings(tmp_path, dev_pki, port, "starttls", True))
    assert isinstance(notifier, SmarthostNotifier)
    path = await notifier.send("carole@exemple.fr", "Votre code : 654321", "Code 654321\n",
                               kind="reset-code")
    assert notifier.queued() == [path] and path.stat().st_mode & 0o777 == 0o600
    deferred = [r for r in quiet_logs.records if r.getMessage() == "system_mail_deferred"]
    assert deferred and "654321" not in quiet_logs.text and "carole" not in quiet_logs.text
    with smarthost(dev_pki, "starttls", port) as (collected, _port):
        assert await notifier.retry() == 0
    assert [rcpts for _s, rcpts, _r in collected.messages] == [["carole@exemple.fr"]]
    assert notifier.queued() == []


async def test_a_smarthost_without_tls_is_refused(tmp_path: Path,
                                                  dev_pki: DevPkiBundle) -> None:
    with smarthost(dev_pki, "plain") as (collected, port):
        notifier = notifier_for(notify_settings(tmp_path, dev_pki, port, "starttls"))
        assert isinstance(notifier, SmarthostNotifier)
        await notifier.send("dan@exemple.fr", "x", "y\n", kind="notice")
        assert collected.messages == [] and len(notifier.queued()) == 1


def test_without_smarthost_the_outbox_is_used(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, env={})
    assert isinstance(notifier_for(settings), Outbox)


async def test_the_gateway_sends_portal_codes_through_the_smarthost(
    tmp_path: Path, dev_pki: DevPkiBundle,
) -> None:
    with smarthost(dev_pki, "starttls") as (collected, port):
        password_file = tmp_path / "pw"
        password_file.write_text(PASSWORD)
        settings = gateway_settings(
            tmp_path / "gw", directory={"enabled": False},
            notify={"smarthost": "127.0.0.1", "port": port, "tls": "starttls",
                    "ca_file": str(dev_pki.settings.pki_dir / "ca.pem"), "username": USER,
                    "password_file": str(password_file)})
        async with running_gateway(settings) as gw:
            doctor, _app, usual = await person(gw, "dr.smarthost", DOCTOR_PW)
            await ask_reset(gw, doctor)
            await asyncio.sleep(0.1)
            assert not (gw.settings.data_dir / "outbox").exists()
    [(sender, rcpts, raw)] = collected.messages
    assert sender == "ne-pas-repondre@mssante.test" and rcpts == [usual]
    assert "réinitialisation" in str(message_from_bytes(raw, policy=policy.default)["Subject"])


async def ask_reset(gw: RunningGateway, address: str) -> None:
    async with portal(gw) as http:
        token = await form_token(http, "/mot-de-passe-oublie")
        answer = await http.post("/mot-de-passe-oublie", data={"csrf": token,
                                                              "email": address})
        assert answer.status_code == 303


