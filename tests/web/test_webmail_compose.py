"""Writing from the webmail through a real gateway: the message leaves through the
submission pipeline (same proofs as SMTP), a colleague reads it over IMAP, the tracking page
follows it to "lu", and the receipt PDF names both parties and the content SHA-256.
Refusals: an 11 MB attachment (413, French), an address outside the trust space (400,
French, nothing sent), and compose for a box delegated read-only (403)."""

from __future__ import annotations

import asyncio
import hashlib
import html
import io
import re
from email import message_from_bytes, policy
from pathlib import Path

import pypdf

from tests.fixtures.gateway import gateway_settings, running_gateway
from tests.web.webmail_write_client import compose, folder_raw, imap_fetch_all, signed_in

MB = 1024 * 1024


def settings_for(tmp_path: Path):  # type: ignore[no-untyped-def]
    return gateway_settings(tmp_path / "gw", directory={"enabled": False})


def _state(page: str, address: str) -> str:
    row = re.search(rf'data-address="{re.escape(address)}">.*?class="state state-(\w+)"',
                    page, re.S)
    assert row, page[-3000:]
    return row.group(1)


async def test_send_track_read_receipt(tmp_path: Path) -> None:
    async with running_gateway(settings_for(tmp_path)) as gw:
        doctor, doctor_addr, _pw = await signed_in(gw, "martin")
        _colleague, colleague_addr, colleague_pw = await signed_in(gw, "bernard")
        attachment = bytes(range(256)) * (3 * MB // 256)
        sent = await compose(doctor, a=colleague_addr, objet="Compte rendu é",
                             corps="Bonjour,\nci-joint le compte rendu.",
                             avis_remise="1", avis_lecture="1",
                             files=[("compte rendu.pdf", attachment, "application/pdf")])
        assert sent.status_code == 303, sent.text
        assert sent.headers["location"] == "/courrier/suivi?envoye=1"

        page = (await doctor.get(sent.headers["location"])).text
        assert "Compte rendu é" in page and "Message envoyé" in page, page
        assert _state(page, colleague_addr) == "delivered"

        unread = (await doctor.get("/courrier/suivi", params={"non_lus_depuis": "0"})).text
        assert "Compte rendu é" in unread, "sent, not read after 0 days"
        later = (await doctor.get("/courrier/suivi", params={"non_lus_depuis": "3"})).text
        assert "Compte rendu é" not in later and "Aucun message" in later
        bad = await doctor.get("/courrier/suivi", params={"non_lus_depuis": "trois"})
        assert bad.status_code == 400

        messages = await asyncio.to_thread(imap_fetch_all, gw, colleague_addr, colleague_pw)
        letters = [m for m in messages if b"Compte rendu" in m]
        assert len(letters) == 1
        msg = message_from_bytes(letters[0], policy=policy.default)
        assert msg["From"].addresses[0].addr_spec == doctor_addr
        assert str(msg["Disposition-Notification-To"]) == doctor_addr
        assert "Bcc" not in msg
        (part,) = list(msg.iter_attachments())
        assert part.get_filename() == "compte rendu.pdf"
        assert part.get_content() == attachment
        assert "Received" in msg and "HTTPS" in str(msg["Received"])

        page = (await doctor.get("/courrier/suivi")).text
        assert _state(page, colleague_addr) == "read", page[-2000:]
        unread = (await doctor.get("/courrier/suivi", params={"non_lus_depuis": "0"})).text
        assert "Compte rendu é" not in unread, "read: no longer in the filter"

        # the same proofs as SMTP submission: submitted by the doctor over the web
        ref = msg["Message-ID"]
        proofs = await gw.proofs_for(ref)
        kinds = [p["kind"] for p in proofs]
        assert kinds[0] == "submitted" and "delivered" in kinds and "read" in kinds
        assert proofs[0]["actor"] == doctor_addr
        # the delivered DSN asked with the notification option came back to the doctor
        assert "dsn-sent" in kinds

        # a copy in Sent, seen, with the fields submission added (Received, Message-ID)
        copies = await folder_raw(gw, doctor_addr, "Sent")
        assert len(copies) == 1 and copies[0][0] == "\\Seen"
        assert f"Message-ID: {ref}".encode() in copies[0][1]
        # the delivered DSN asked for reached the doctor's INBOX
        inbox = await folder_raw(gw, doctor_addr, "INBOX")
        assert any(b"message/delivery-status" in raw for _f, raw in inbox)

        seq = re.search(r'href="/courrier/suivi/(\d+)/accuse\.pdf', page)
        assert seq
        pdf = await doctor.get(f"/courrier/suivi/{seq.group(1)}/accuse.pdf",
                               params={"destinataire": colleague_addr})
        assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
        assert pdf.headers["content-disposition"].startswith("attachment")
        text = "".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(pdf.content)).pages)
        sha = hashlib.sha256(letters[0]).hexdigest()
        stored_sha = proofs[0]["content_sha256"]
        assert doctor_addr in text and colleague_addr in text
        assert stored_sha in text, (sha, stored_sha, text)

        story = (await doctor.get(f"/courrier/suivi/{seq.group(1)}")).text
        assert "Historique des preuves" in story and "SubmissionAcceptance" in story
        assert "ContentHandover" in story  # the reading
        assert (await _colleague.get(f"/courrier/suivi/{seq.group(1)}")).status_code == 404
        # the colleague cannot see the doctor's tracking or receipt
        other = await _colleague.get(f"/courrier/suivi/{seq.group(1)}/accuse.pdf")
        assert other.status_code == 404
        await doctor.aclose()
        await _colleague.aclose()


async def test_refusals_before_sending(tmp_path: Path) -> None:
    settings = gateway_settings(tmp_path / "gw", directory={"enabled": False},
                                smtp={"max_recipients": 3})
    async with running_gateway(settings) as gw:
        doctor, _doctor_addr, _pw = await signed_in(gw, "martin")
        _colleague, colleague_addr, _cpw = await signed_in(gw, "bernard")

        big = await compose(doctor, a=colleague_addr, objet="trop gros",
                            files=[("imagerie.zip", b"\0" * (11 * MB), "application/zip")])
        assert big.status_code == 413
        assert "La pièce jointe « imagerie.zip » dépasse 10 Mo" in big.text

        outside = await compose(doctor, a=f"{colleague_addr}, patient@gmail.com",
                                objet="dehors", corps="x")
        assert outside.status_code == 400
        shown = html.unescape(outside.text)
        assert ("patient@gmail.com : le domaine gmail.com n'appartient pas à l'espace de "
                "confiance MSSanté") in shown
        assert "Rien n'a été envoyé" in shown
        assert f"{colleague_addr} :" not in shown  # only the refused address is named
        unknown = await compose(doctor, a="personne@mssante.test", objet="x")
        assert unknown.status_code == 400
        assert ("personne@mssante.test : cette boîte aux lettres n'existe pas"
                in html.unescape(unknown.text))
        assert await gw.proofs_for(None) is not None
        rows = await gw.inbox_messages(colleague_addr)
        assert not rows, "nothing may reach the colleague when one address is refused"

        many = await compose(doctor, a=", ".join(f"p{i}@mssante.test" for i in range(4)),
                             objet="x")
        assert many.status_code == 400
        assert "au plus 3 destinataires par message" in html.unescape(many.text)

        no_csrf = await doctor.post("/courrier/ecrire", data={"a": colleague_addr},
                                    files=[("pieces", ("a.txt", b"x", "text/plain"))])
        assert no_csrf.status_code == 403
        await doctor.aclose()
        await _colleague.aclose()
