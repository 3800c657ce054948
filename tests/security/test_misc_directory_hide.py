"""``mssante directory hide|unhide ADDR``: the "liste rouge" of a local mailbox.

Before: no command could mark an entry liste rouge, so a professional who asked to be
hidden stayed visible to every directory user. Checked with ldapsearch as an ordinary
user (a published mailbox binding with its application password over LDAPS: the hidden
entry is not found) and as the gateway's service identity (ldapi, SASL EXTERNAL: found,
with ``mssanteListeRouge: TRUE``); the flag survives a restart and its re-publication.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import pytest

from directory_ldap.layout import local_dn
from directory_ldap.service import slapd_layout
from tests.fixtures.gateway import ServeProcess

pytestmark = pytest.mark.timeout(150)
HIDDEN = "postmaster@mssante.test"  # created at first start, active and published


def _mssante(proc: ServeProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(proc.command()[0])), *args], env=proc._env(), capture_output=True,
        text=True, timeout=60, check=False,
    )


def _as_user(proc: ServeProcess, address: str) -> str:
    """ldapsearch over LDAPS bound as the demo mailbox (an ordinary directory user)."""
    settings = proc.settings()
    base = settings.directory.base_dn
    env = {**os.environ, "LDAPTLS_CACERT": str(proc.ca_file), "LDAPTLS_REQCERT": "demand"}
    done = subprocess.run(
        ["ldapsearch", "-LLL", "-o", "nettimeout=5", "-H",
         f"ldaps://127.0.0.1:{proc.ports['MSSANTE_DIRECTORY_LDAPS_PORT']}", "-x",
         "-D", local_dn(base, proc.demo_address, "PER"), "-w", proc.demo_password,
         "-b", base, f"(mail={address})", "mail", "mssanteListeRouge"],
        capture_output=True, text=True, env=env, timeout=20, check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _as_service(proc: ServeProcess, address: str) -> str:
    """ldapsearch over the ldapi socket as the gateway's service identity."""
    settings = proc.settings()
    layout = slapd_layout(settings)
    done = subprocess.run(
        ["ldapsearch", "-LLL", "-Q", "-Y", "EXTERNAL", "-H", layout.ldapi_url,
         "-b", settings.directory.base_dn, f"(mail={address})", "mail", "mssanteListeRouge"],
        capture_output=True, text=True, timeout=20, check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_hide_and_unhide_through_ldapsearch(serve_process: ServeProcess) -> None:
    proc = serve_process
    await asyncio.to_thread(proc.start)
    assert f"mail: {HIDDEN}" in await asyncio.to_thread(_as_user, proc, HIDDEN)

    done = await asyncio.to_thread(_mssante, proc, "directory", "hide", HIDDEN)
    assert done.returncode == 0, done.stdout + done.stderr
    assert HIDDEN in done.stdout
    assert f"mail: {HIDDEN}" not in await asyncio.to_thread(_as_user, proc, HIDDEN)
    seen = await asyncio.to_thread(_as_service, proc, HIDDEN)
    assert f"mail: {HIDDEN}" in seen and "mssanteListeRouge: TRUE" in seen, seen

    # The gateway re-publishes every account at start: the flag is kept.
    proc.kill()
    await asyncio.to_thread(proc.start)
    assert f"mail: {HIDDEN}" not in await asyncio.to_thread(_as_user, proc, HIDDEN)
    assert "mssanteListeRouge: TRUE" in await asyncio.to_thread(_as_service, proc, HIDDEN)

    done = await asyncio.to_thread(_mssante, proc, "directory", "unhide", HIDDEN)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"mail: {HIDDEN}" in await asyncio.to_thread(_as_user, proc, HIDDEN)
    seen = await asyncio.to_thread(_as_service, proc, HIDDEN)
    assert f"mail: {HIDDEN}" in seen and "mssanteListeRouge" not in seen, seen

    # each change is proved under the account's history, naming the operator (before:
    # no proof)
    shown = await asyncio.to_thread(_mssante, proc, "proofs", "show", f"account:{HIDDEN}")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "liste_rouge changed from False to True by operator:" in shown.stdout, shown.stdout
    assert "liste_rouge changed from True to False by operator:" in shown.stdout, shown.stdout

    unknown = await asyncio.to_thread(_mssante, proc, "directory", "hide",
                                      "nobody@mssante.test")
    assert unknown.returncode == 2, unknown.stdout + unknown.stderr
    assert "nobody@mssante.test" in unknown.stdout + unknown.stderr
