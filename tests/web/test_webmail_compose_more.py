"""The rest of writing in the webmail, through a real gateway: a secretary with send-as
rights writes for the doctor (From the doctor, Sender the secretary, the proof names the
secretary); read-only rights give 403 on compose for that box; a draft is saved to
Drafts, reopened and sent (and leaves Drafts); reply, reply-all and forward carry the
thread fields, the quotation and the original."""

from __future__ import annotations

import asyncio
import html
import re
from email import message_from_bytes, policy
from pathlib import Path

from accounts import delegations
from tests.fixtures.gateway import gateway_settings, running_gateway
from tests.web.portal_client import csrf
from tests.web.webmail_write_client import (
    compose,
    folder_id,
    folder_raw,
    imap_fetch_all,
    signed_in,
)


def _settings(tmp_path: Path):  # type: ignore[no-untyped-def]
    return gateway_settings(tmp_path / "gw", directory={"enabled": False})


async def test_delegate_send_as_and_read_only(tmp_path: Path) -> None:
    async with running_gateway(_settings(tmp_path)) as gw:
        assert gw.gw.db is not None
        doctor_http, doctor, _ = await signed_in(gw, "durand")
        secretary_http, secretary, _ = await signed_in(gw, "accueil")
        reader_http, reader, _ = await signed_in(gw, "lecteur")
        _c, colleague, colleague_pw = await signed_in(gw, "petit")
        await delegations.grant(gw.gw.db, doctor, secretary, "lrsp", can_send_as=True)
        await delegations.grant(gw.gw.db, doctor, reader, "lr")

        page = await secretary_http.get("/courrier/ecrire", params={"boite": doctor})
        assert page.status_code == 200 and f'value="{doctor}" selected' in page.text
        sent = await compose(secretary_http, query=f"?boite={doctor}", boite=doctor,
                             a=colleague, objet="Pour le Dr Durand", corps="Rendez-vous.")
        assert sent.status_code == 303, sent.text
        (raw,) = [m for m in await asyncio.to_thread(imap_fetch_all, gw, colleague,
                                                      colleague_pw)
                  if b"Pour le Dr Durand" in m]
        msg = message_from_bytes(raw, policy=policy.default)
        assert msg["From"].addresses[0].addr_spec == doctor
        assert msg["Sender"].addresses[0].addr_spec == secretary
        proofs = await gw.proofs_for(msg["Message-ID"])
        assert proofs[0]["kind"] == "submitted" and proofs[0]["actor"] == secretary
        # the copy is in the doctor's Sent; both see it in their tracking
        assert any(b"Pour le Dr Durand" in r for _f, r in await folder_raw(gw, doctor, "Sent"))
        assert "Pour le Dr Durand" in (await secretary_http.get("/courrier/suivi")).text
        assert "Pour le Dr Durand" in (await doctor_http.get("/courrier/suivi")).text

        # in the doctor's INBOX, reply buttons only for the delegate who may write
        assert (await compose(_c, a=doctor, objet="Pour vous", corps="x")).status_code == 303
        inbox = await folder_id(gw, doctor, "INBOX")
        as_reader = await reader_http.get(f"/courrier/dossier/{inbox}/message/1")
        assert as_reader.status_code == 200 and "Pour vous" in as_reader.text
        assert "repondre=" not in as_reader.text and "transferer=" not in as_reader.text
        as_secretary = await secretary_http.get(f"/courrier/dossier/{inbox}/message/1")
        assert f"repondre=1&amp;boite={doctor.replace('@', '%40')}" in as_secretary.text

        refused = await reader_http.get("/courrier/ecrire", params={"boite": doctor})
        assert refused.status_code == 403
        assert "lecture seule" in html.unescape(refused.text)
        forged = await compose(reader_http, boite=doctor, a=colleague, objet="x")
        assert forged.status_code == 403
        for http in (doctor_http, secretary_http, reader_http, _c):
            await http.aclose()


async def test_draft_reply_forward(tmp_path: Path) -> None:
    async with running_gateway(_settings(tmp_path)) as gw:
        alice_http, alice, _ = await signed_in(gw, "alice")
        bob_http, bob, bob_pw = await signed_in(gw, "bob")
        _c, carol, _ = await signed_in(gw, "carol")

        saved = await compose(alice_http, action="brouillon", a=bob, cci=carol,
                              objet="Brouillon important", corps="À finir.",
                              avis_lecture="1",
                              files=[("note.txt", b"piece jointe", "text/plain")])
        assert saved.status_code == 200 and "Brouillon enregistré" in saved.text
        drafts = await folder_raw(gw, alice, "Drafts")
        assert len(drafts) == 1 and "\\Draft" in drafts[0][0]
        assert b"Bcc: " + carol.encode() in drafts[0][1]
        assert not await gw.inbox_messages(bob), "a draft is not sent"

        drafts_id = re.search(r'href="/courrier/dossier/(\d+)"[^>]*>\s*<span class="name">'
                              r"Brouillons<", (await alice_http.get("/courrier/suivi")).text)
        assert drafts_id
        reopened = await alice_http.get("/courrier/ecrire", params={
            "dossier": drafts_id.group(1), "brouillon": "1"})
        assert reopened.status_code == 200
        text = html.unescape(reopened.text)
        assert 'value="Brouillon important"' in text and f'value="{carol}"' in text
        assert "À finir." in text and 'name="avis_lecture" value="1" checked' in text
        sent = await alice_http.post("/courrier/ecrire", data={
            "csrf": csrf(reopened.text), "action": "envoyer", "boite": alice, "a": bob,
            "cci": carol, "objet": "Brouillon important", "corps": "Fini.",
            "brouillon": "1"})
        assert sent.status_code == 303, sent.text
        assert await folder_raw(gw, alice, "Drafts") == [], "the draft leaves Drafts"
        assert await gw.inbox_messages(carol), "Bcc recipients receive it"
        # RFC 5322 §3.6.3: the transmitted copies hide the Bcc, the sender's copy shows it.
        for reader in (bob, carol):
            received = [raw for _f, raw in await folder_raw(gw, reader, "INBOX")
                        if b"Brouillon important" in raw]
            assert received and all(
                message_from_bytes(raw, policy=policy.default)["Bcc"] is None
                for raw in received), received
        [(_f, kept)] = [m for m in await folder_raw(gw, alice, "Sent")
                        if b"Brouillon important" in m[1]]
        sent_copy = message_from_bytes(kept, policy=policy.default)
        assert sent_copy["Bcc"] == carol and sent_copy["To"] == bob

        # bob answers to all, then forwards
        inbox = re.search(r'href="/courrier/dossier/(\d+)"[^>]*>\s*<span class="name">'
                          r"Boîte de réception<", (await bob_http.get("/courrier/suivi")).text)
        assert inbox
        reply = await bob_http.get("/courrier/ecrire", params={
            "dossier": inbox.group(1), "repondre": "1", "tous": "1"})
        assert reply.status_code == 200
        text = html.unescape(reply.text)
        to_value = re.search(r'id="a" name="a" value="([^"]*)"', text)
        assert 'value="Re : Brouillon important"' in text and to_value
        assert alice in to_value.group(1)
        cc_value = re.search(r'id="cc" name="cc" value="([^"]*)"', text)
        assert cc_value and carol not in cc_value.group(1), "Bcc recipients stay hidden"
        assert "> Fini." in text and 'name="en_reponse_a" value="<' in text
        answered = await bob_http.post("/courrier/ecrire", data={
            "csrf": csrf(reply.text), "action": "envoyer", "boite": bob, "a": alice,
            "objet": "Re : Brouillon important", "corps": "Merci.",
            "en_reponse_a": re.search(r'name="en_reponse_a" value="([^"]+)"', text).group(1),
            "references": re.search(r'name="references" value="([^"]+)"', text).group(1),
            "origine": re.search(r'name="origine" value="([^"]+)"', text).group(1)})
        assert answered.status_code == 303
        (answer,) = [m for _f, m in await folder_raw(gw, alice, "INBOX") if b"Merci." in m]
        (original_flags,) = [f for f, m in await folder_raw(gw, bob, "INBOX") if b"Fini." in m]
        assert "\\Answered" in original_flags
        parsed = message_from_bytes(answer, policy=policy.default)
        assert parsed["In-Reply-To"] and parsed["In-Reply-To"] in str(parsed["References"])

        forward = await bob_http.get("/courrier/ecrire", params={
            "dossier": inbox.group(1), "transferer": "1"})
        text = html.unescape(forward.text)
        assert 'value="Tr : Brouillon important"' in text and "Message transféré" in text
        ref = re.search(r'name="transfert" value="([^"]+)"', text).group(1)
        done = await bob_http.post("/courrier/ecrire", data={
            "csrf": csrf(forward.text), "action": "envoyer", "boite": bob, "a": carol,
            "objet": "Tr : Brouillon important", "corps": "Pour info.", "transfert": ref,
            "origine": ref})
        assert done.status_code == 303
        (fwd,) = [m for _f, m in await folder_raw(gw, carol, "INBOX") if b"Pour info." in m]
        attached = [p for p in message_from_bytes(fwd, policy=policy.default).iter_attachments()]
        (original_flags,) = [f for f, m in await folder_raw(gw, bob, "INBOX") if b"Fini." in m]
        assert "$Forwarded" in original_flags and "\\Answered" in original_flags
        assert attached and attached[0].get_content_type() == "message/rfc822"
        # another user's folder id answers 404
        stolen = await _c.get("/courrier/ecrire", params={"dossier": inbox.group(1),
                                                          "repondre": "1"})
        assert stolen.status_code == 404
        for http in (alice_http, bob_http, _c):
            await http.aclose()
