"""Talking to the portal of a running gateway as a browser would: cookies, CSRF tokens,
links and codes read from the outbox files."""

from __future__ import annotations

import re
import ssl
from email import message_from_bytes, policy
from urllib.parse import urlsplit

import httpx

from accounts.portal_password import set_portal_password
from tests.fixtures.gateway import RunningGateway

ADMIN_PASSWORD = "Gr4nd-Chene!"  # noqa: S105 - test value
ADMIN_USUAL = "admin.perso@exemple.fr"


def portal(gw: RunningGateway) -> httpx.AsyncClient:
    ctx = ssl.create_default_context(cafile=str(gw.ca_file))
    return httpx.AsyncClient(base_url=f"https://127.0.0.1:{gw.web_port}", verify=ctx,
                             timeout=30)


def csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, html[:500]
    return match.group(1)


async def form_token(http: httpx.AsyncClient, path: str) -> str:
    answer = await http.get(path)
    assert answer.status_code == 200, answer.text
    return csrf(answer.text)


def outbox(gw: RunningGateway) -> list[tuple[str, str, str]]:
    """(to, subject, body) of every system e-mail written so far, oldest first."""
    out = []
    for path in sorted((gw.settings.data_dir / "outbox").glob("*.eml")):
        msg = message_from_bytes(path.read_bytes(), policy=policy.default)
        body = msg.get_body(("plain",))
        assert body is not None
        out.append((str(msg["To"]), str(msg["Subject"]), body.get_content()))
    return out


def last_mail_to(gw: RunningGateway, to: str) -> tuple[str, str]:
    mails = [(s, b) for t, s, b in outbox(gw) if t == to]
    assert mails, f"no mail to {to}"
    return mails[-1]


def confirmation_path(body: str) -> str:
    match = re.search(r"https://\S+/confirmer\?jeton=[A-Za-z0-9_-]+", body)
    assert match, body
    parts = urlsplit(match.group(0))
    return f"{parts.path}?{parts.query}"


def code_in(subject: str) -> str:
    match = re.search(r"\b(\d{6})\b", subject)
    assert match, subject
    return match.group(1)


async def give_admin_portal_access(gw: RunningGateway) -> str:
    """The first administrator's portal password and usual address; its address."""
    assert gw.gw.db is not None
    address = f"postmaster@{gw.settings.primary_domain}"
    await set_portal_password(gw.gw.db, address, ADMIN_PASSWORD, ADMIN_USUAL)
    return address


async def sign_in(gw: RunningGateway, http: httpx.AsyncClient, address: str, password: str,
                  usual: str) -> httpx.Response:
    """Password, then the code from the outbox; the answer to the code (303 to /compte)."""
    token = await form_token(http, "/connexion")
    answer = await http.post("/connexion", data={"csrf": token, "email": address,
                                                 "password": password})
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/connexion/code"
    subject, _body = last_mail_to(gw, usual)
    token = await form_token(http, "/connexion/code")
    return await http.post("/connexion/code", data={"csrf": token, "code": code_in(subject)})
