"""The absence message end to end: set on the settings page, answered at local delivery
through the pipeline with a proof (once per sender), never to a list message, an automatic
one, or a Bcc recipient; off again, nobody is answered."""

from __future__ import annotations

import asyncio
import html
import smtplib
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from tests.fixtures.gateway import RunningGateway, gateway_settings, running_gateway
from tests.web.portal_client import csrf
from tests.web.webmail_write_client import folder_raw, signed_in


def _submit(gw: RunningGateway, login: str, password: str, to: list[str], subject: str,
            **fields: str) -> None:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = login, ", ".join(to[:1]), subject
    msg["Message-ID"] = f"<{subject.replace(' ', '-').replace('é', 'e')}@mssante.test>"
    for name, value in fields.items():
        msg[name.replace("_", "-")] = value
    msg.set_content("Bonjour.")
    with smtplib.SMTP_SSL("127.0.0.1", gw.submissions_port, context=gw.client_context(),
                          timeout=30) as smtp:
        smtp.login(login, password)
        smtp.send_message(msg, to_addrs=to)


async def _replies(gw: RunningGateway, address: str) -> list[EmailMessage]:
    assert gw.gw.vacation is not None
    await gw.gw.vacation.idle()
    out = []
    for _flags, raw in await folder_raw(gw, address, "INBOX"):
        msg = message_from_bytes(raw, policy=policy.default)
        if "Auto-Submitted" in msg:
            out.append(msg)
    return out


async def test_absence_replies(tmp_path: Path) -> None:
    settings = gateway_settings(tmp_path / "gw", directory={"enabled": False})
    async with running_gateway(settings) as gw:
        doctor_http, doctor, _ = await signed_in(gw, "durand")
        _c, colleague, colleague_pw = await signed_in(gw, "martin")

        page = await doctor_http.get("/courrier/absence")
        assert page.status_code == 200
        bad = await doctor_http.post("/courrier/absence", data={
            "csrf": csrf(page.text), "actif": "1", "du": "2026-12-10", "au": "2026-12-01",
            "message": "x", "jours": "7"})
        assert bad.status_code == 400
        assert "La date de fin précède la date de début." in html.unescape(bad.text)
        saved = await doctor_http.post("/courrier/absence", data={
            "csrf": csrf(page.text), "actif": "1", "du": "", "au": "",
            "message": "Je suis absent jusqu'au 15.", "contact": "remplacant@mssante.test",
            "jours": "7"})
        assert saved.status_code == 200 and "Répondeur d&#39;absence activé" in saved.text

        send = asyncio.to_thread
        await send(_submit, gw, colleague, colleague_pw, [doctor], "Premier")
        replies = await _replies(gw, colleague)
        assert len(replies) == 1
        reply = replies[0]
        assert str(reply["Auto-Submitted"]).startswith("auto-replied")
        assert reply["In-Reply-To"] == "<Premier@mssante.test>"
        assert reply["Subject"] == "Absent : Premier"
        assert "remplacant@mssante.test" in reply.get_body(("plain",)).get_content()
        proofs = await gw.proofs_for(reply["Message-ID"])
        assert proofs[0]["kind"] == "submitted" and proofs[0]["actor"] == doctor
        assert "delivered" in [p["kind"] for p in proofs]

        await send(_submit, gw, colleague, colleague_pw, [doctor], "Second")  # same sender
        await send(_submit, gw, colleague, colleague_pw, [doctor], "Liste",
                   List_Id="<cardio.mssante.test>")
        await send(_submit, gw, colleague, colleague_pw, [doctor], "Automatique",
                   Auto_Submitted="auto-generated")
        assert len(await _replies(gw, colleague)) == 1, "once per sender per period"

        # a Bcc recipient (not in To/Cc) is not answered, even by a new sender
        third_http, third, third_pw = await signed_in(gw, "petit")
        await send(_submit, gw, third, third_pw, [colleague, doctor], "Copie cachée")
        assert await _replies(gw, third) == []
        # in To, the new sender is answered once
        await send(_submit, gw, third, third_pw, [doctor], "Direct")
        assert len(await _replies(gw, third)) == 1

        page = await doctor_http.get("/courrier/absence")
        off = await doctor_http.post("/courrier/absence", data={
            "csrf": csrf(page.text), "message": "Je suis absent.", "jours": "7"})
        assert "Répondeur d&#39;absence désactivé" in off.text
        await send(_submit, gw, third, third_pw, [doctor], "Retour")
        assert len(await _replies(gw, third)) == 1
        for http in (doctor_http, _c, third_http):
            await http.aclose()
