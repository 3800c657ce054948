"""The HTTPS side of a real gateway: health, readiness, metrics, client autoconfiguration.

Driven with real clients (httpx and Debian's curl) over TLS against a gateway started on
ephemeral ports with its own development PKI and managed slapd.
"""

from __future__ import annotations

import asyncio
import ssl
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from config import load_settings
from config.loader import ConfigError
from tests.fixtures.gateway import RunningGateway, gateway_settings, running_gateway

OUTLOOK_REQUEST = """<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
  <Request>
    <EMailAddress>{address}</EMailAddress>
    <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>
  </Request>
</Autodiscover>"""
RESPONSE_NS = "{http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a}"


@pytest.fixture
async def web_gateway(tmp_path: Path) -> AsyncIterator[RunningGateway]:
    async with running_gateway(gateway_settings(tmp_path / "gw")) as running:
        yield running


def client(gw: RunningGateway) -> httpx.AsyncClient:
    ctx = ssl.create_default_context(cafile=str(gw.ca_file))
    return httpx.AsyncClient(base_url=f"https://127.0.0.1:{gw.web_port}", verify=ctx,
                             timeout=10)


async def test_healthz_over_tls_with_security_headers(web_gateway: RunningGateway) -> None:
    async with client(web_gateway) as http:
        answer = await http.get("/healthz")
    assert answer.status_code == 200 and answer.text == "ok\n"
    headers = answer.headers
    assert headers["strict-transport-security"].startswith("max-age=31536000")
    csp = headers["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["cache-control"] == "no-store"
    assert "server" not in headers


async def test_curl_sees_the_same_and_plain_http_gets_nothing(
    web_gateway: RunningGateway,
) -> None:
    proc = await asyncio.create_subprocess_exec(
        "curl", "-sS", "--cacert", str(web_gateway.ca_file), "--tlsv1.2",
        f"https://127.0.0.1:{web_gateway.web_port}/healthz",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err
    assert out == b"ok\n"
    # no clear-text HTTP on the port: the TLS server answers nothing a browser could use
    async with httpx.AsyncClient(timeout=5) as plain:
        with pytest.raises(httpx.HTTPError):
            await plain.get(f"http://127.0.0.1:{web_gateway.web_port}/healthz")


async def test_readyz_names_each_check_and_fails_when_the_directory_is_down(
    web_gateway: RunningGateway,
) -> None:
    async with client(web_gateway) as http:
        answer = await http.get("/readyz")
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"ready": True, "checks": {
            "database": "ok", "trustspace": "ok", "directory": "ok"}}
        assert web_gateway.gw.directory is not None
        await web_gateway.gw.directory.stop()
        answer = await http.get("/readyz")
    assert answer.status_code == 503
    body = answer.json()
    assert body["ready"] is False
    assert body["checks"]["database"] == "ok" and body["checks"]["directory"] != "ok"


async def test_metrics_report_the_store_and_the_certificates(
    web_gateway: RunningGateway,
) -> None:
    async with client(web_gateway) as http:
        answer = await http.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = answer.text
    # first start made the administrator (ORG) and the demo mailbox (PER)
    assert 'mssante_mailboxes{status="active",type="PER"} 1.0' in text
    assert 'mssante_mailboxes{status="active",type="ORG"} 1.0' in text
    assert 'mssante_queue_messages{state="queued"} 0.0' in text
    assert "mssante_trustspace_domains " in text
    assert 'mssante_tls_expiry_seconds{role="server"' in text
    assert 'mssante_tls_expiry_seconds{role="anchor"' in text
    assert "mssante_process_resident_memory_bytes" in text
    [expiry] = [line for line in text.splitlines()
                if line.startswith('mssante_tls_expiry_seconds{role="server"')]
    assert float(expiry.rsplit(" ", 1)[1]) > 86400  # a fresh certificate: days ahead


async def test_metrics_refused_to_addresses_not_listed(tmp_path: Path) -> None:
    settings = gateway_settings(tmp_path / "gw", web={"metrics_from": ("10.0.0.0/8",)})
    async with running_gateway(settings) as gw, client(gw) as http:
        answer = await http.get("/metrics")
        assert answer.status_code == 403
        assert "metrics_from" in answer.text and "Accès refusé" in answer.text
        assert (await http.get("/healthz")).status_code == 200


def test_metrics_from_must_be_addresses(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"web.metrics_from = 'partout'"):
        load_settings(data_dir=tmp_path, env={},
                      overrides={"web": {"metrics_from": ("127.0.0.1", "partout")}})


# -- Thunderbird autoconfig ---------------------------------------------------------------

SOCKET_TYPES = {"plain", "SSL", "STARTTLS"}
AUTH_VALUES = {"password-cleartext", "password-encrypted", "NTLM", "GSSAPI",
               "client-IP-address", "TLS-client-cert", "OAuth2", "none"}


def check_config_v11(document: bytes) -> ET.Element:
    """The config-v1.1 shape Thunderbird reads (ConfigFileFormat): one emailProvider with
    domains, then incoming and outgoing servers, each with its five children."""
    root = ET.fromstring(document)  # noqa: S314 - our own server's answer
    assert root.tag == "clientConfig" and root.get("version") == "1.1"
    [provider] = root.findall("emailProvider")
    assert provider.get("id") and provider.findall("domain")
    servers = provider.findall("incomingServer") + provider.findall("outgoingServer")
    assert servers
    for server in servers:
        assert server.get("type") in {"imap", "pop3", "smtp"}
        assert server.findtext("hostname")
        assert 0 < int(server.findtext("port") or "0") < 65536
        assert server.findtext("socketType") in SOCKET_TYPES
        assert server.findtext("username")
        auths = [a.text for a in server.findall("authentication")]
        assert auths and set(auths) <= AUTH_VALUES
    return provider


@pytest.mark.parametrize("path", ["/.well-known/autoconfig/mail/config-v1.1.xml",
                                  "/mail/config-v1.1.xml"])
async def test_thunderbird_autoconfig(web_gateway: RunningGateway, path: str) -> None:
    settings = web_gateway.settings
    imap_service = next(s for s in web_gateway.gw.services if s.name == "IMAP")
    imap_tls_port, imap_port = imap_service.server.tls_port, imap_service.server.port  # type: ignore[attr-defined]
    async with client(web_gateway) as http:
        answer = await http.get(path, params={"emailaddress": web_gateway.demo_address})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/xml")
    provider = check_config_v11(answer.content)
    [imaps, imap] = provider.findall("incomingServer")
    assert (imaps.findtext("port"), imaps.findtext("socketType")) == (str(imap_tls_port), "SSL")
    assert (imap.findtext("port"), imap.findtext("socketType")) == (str(imap_port), "STARTTLS")
    [smtps, smtp] = provider.findall("outgoingServer")
    assert (smtps.findtext("port"), smtps.findtext("socketType")) == (
        str(web_gateway.submissions_port), "SSL")
    assert (smtp.findtext("port"), smtp.findtext("socketType")) == (
        str(web_gateway.submission_port), "STARTTLS")
    assert imaps.findtext("hostname") == settings.hostname
    assert imaps.findtext("username") == "%EMAILADDRESS%"


async def test_autoconfig_refusals(web_gateway: RunningGateway) -> None:
    path = "/.well-known/autoconfig/mail/config-v1.1.xml"
    async with client(web_gateway) as http:
        foreign = await http.get(path, params={"emailaddress": "x@gmail.com"})
        assert foreign.status_code == 404 and "pas servi" in foreign.text
        bad = await http.get(path, params={"emailaddress": "pas-une-adresse"})
        assert bad.status_code == 400 and "adresse électronique invalide" in bad.text
        # an address that does not exist gets the same answer as one that does
        unknown = await http.get(path, params={"emailaddress": "personne@mssante.test"})
        known = await http.get(path, params={"emailaddress": web_gateway.demo_address})
    assert unknown.status_code == 200 and unknown.content == known.content


# -- Outlook Autodiscover ------------------------------------------------------------------

async def test_outlook_autodiscover(web_gateway: RunningGateway) -> None:
    address = web_gateway.demo_address
    async with client(web_gateway) as http:
        answer = await http.post("/autodiscover/autodiscover.xml",
                                 content=OUTLOOK_REQUEST.format(address=address),
                                 headers={"content-type": "text/xml"})
    assert answer.status_code == 200
    root = ET.fromstring(answer.content)  # noqa: S314 - our own server's answer
    account = root.find(f"{RESPONSE_NS}Response/{RESPONSE_NS}Account")
    assert account is not None
    assert account.findtext(f"{RESPONSE_NS}AccountType") == "email"
    assert account.findtext(f"{RESPONSE_NS}Action") == "settings"
    protocols = {p.findtext(f"{RESPONSE_NS}Type"): p
                 for p in account.findall(f"{RESPONSE_NS}Protocol")}
    assert set(protocols) == {"IMAP", "SMTP"}
    imap = protocols["IMAP"]
    imap_service = next(s for s in web_gateway.gw.services if s.name == "IMAP")
    assert imap.findtext(f"{RESPONSE_NS}Port") == str(imap_service.server.tls_port)  # type: ignore[attr-defined]
    assert imap.findtext(f"{RESPONSE_NS}SSL") == "on"
    assert imap.findtext(f"{RESPONSE_NS}LoginName") == address
    assert protocols["SMTP"].findtext(f"{RESPONSE_NS}Port") == str(
        web_gateway.submissions_port)


async def test_autodiscover_refusals(web_gateway: RunningGateway) -> None:
    url = "/autodiscover/autodiscover.xml"
    async with client(web_gateway) as http:
        foreign = await http.post(url, content=OUTLOOK_REQUEST.format(address="a@b.example"))
        assert foreign.status_code == 404 and b"<ErrorCode>603</ErrorCode>" in foreign.content
        entity = ('<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa">]>'
                  "<Autodiscover><Request><EMailAddress>&a;</EMailAddress></Request>"
                  "</Autodiscover>")
        doctype = await http.post(url, content=entity)
        assert doctype.status_code == 400 and b"DOCTYPE interdit" in doctype.content
        broken = await http.post(url, content="<Autodiscover><Request>")
        assert broken.status_code == 400 and b"<ErrorCode>600</ErrorCode>" in broken.content
        # found by fuzzing: an XML declaration naming an encoding Python does not know
        unknown = await http.post(url, content=OUTLOOK_REQUEST.format(
            address="a@mssante.test").replace('encoding="utf-8"', 'encoding="utf-6"'))
        assert unknown.status_code == 400 and b"<ErrorCode>600</ErrorCode>" in unknown.content
        huge = await http.post(url, content=b"<a>" + b"x" * 20000 + b"</a>")
        assert huge.status_code == 413
        assert (await http.get(url)).status_code == 405
