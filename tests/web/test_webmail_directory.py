"""Directory suggestions on the compose page, against the gateway's real slapd holding the
imported national extract and the local mailboxes: JSON for the vendored script, an HTML
fragment, and the "Rechercher" button without JavaScript; three letters at least."""

from __future__ import annotations

import asyncio
import html
from pathlib import Path

from directory_ldap.importer import import_extract
from directory_ldap.sample_extract import write_sample
from tests.fixtures.gateway import gateway_settings, running_gateway
from tests.web.portal_client import csrf, portal
from tests.web.webmail_write_client import signed_in


async def test_directory_suggestions(tmp_path: Path) -> None:
    async with running_gateway(gateway_settings(tmp_path / "gw")) as gw:
        assert gw.gw.directory is not None
        extract = tmp_path / "extract.txt"
        write_sample(extract, 40)
        await import_extract(gw.gw.directory, extract, online=True)
        http, _me, _ = await signed_in(gw, "durand")

        short = await http.get("/courrier/annuaire", params={"q": "be"})
        assert short.status_code == 400
        assert short.json()["error"] == "Saisissez au moins 3 lettres."

        found = await http.get("/courrier/annuaire", params={"q": "bernard"})
        assert found.status_code == 200 and found.headers["content-type"].startswith(
            "application/json")
        results = found.json()["results"]
        assert results and all("bernard" in r["address"].lower() or
                               "bernard" in r["name"].lower() for r in results)
        first = results[0]
        assert first["profession"] and first["city"] and first["origin"] == "national"

        fragment = await http.get("/courrier/annuaire", params={"q": "bernard"},
                                  headers={"accept": "text/html"})
        assert f'data-address="{first["address"]}"' in fragment.text

        # the local mailbox, published by the directory sync, is found too
        for _ in range(50):
            local = (await http.get("/courrier/annuaire", params={"q": "durand"})).json()
            if any(r["origin"] == "local" for r in local["results"]):
                break
            await asyncio.sleep(0.2)
        else:
            raise AssertionError(f"local mailbox not suggested: {local}")

        # without JavaScript: the "Rechercher" button posts the form and shows the results
        page = await http.get("/courrier/ecrire")
        answer = await http.post("/courrier/ecrire", data={
            "csrf": csrf(page.text), "action": "rechercher", "recherche": "bernard",
            "a": "", "objet": "brouillon en cours"})
        text = html.unescape(answer.text)
        assert answer.status_code == 200 and first["address"] in text
        assert 'value="brouillon en cours"' in text, "what was typed is kept"

        async with portal(gw) as anonymous:
            refused = await anonymous.get("/courrier/annuaire", params={"q": "bernard"})
            assert refused.status_code == 401
        await http.aclose()
