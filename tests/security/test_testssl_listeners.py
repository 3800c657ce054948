"""testssl.sh over every TLS listener of a running ``mssante serve``, STARTTLS ports included.

The unit test in tests/trustspace scans one context; this one scans what a peer really meets
on each port — SMTP relay and submission (STARTTLS), SMTPS, IMAP (STARTTLS), IMAPS, HTTPS and
LDAPS, the last served by slapd through GnuTLS, whose configuration is a different code path
from Python's ssl (testssl.sh cannot scan StartTLS on LDAP: tests/security/test_slapd_tls.py
covers that port with openssl s_client). Each port must offer TLS 1.2 and 1.3 only, ECDHE with
AEAD ciphers only, and no insecure renegotiation.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.gateway import ServeProcess

# (port variable, testssl STARTTLS protocol or None for implicit TLS)
LISTENERS = (
    ("MSSANTE_SMTP_RELAY_PORT", "smtp"),
    ("MSSANTE_SMTP_SUBMISSION_PORT", "smtp"),
    ("MSSANTE_SMTP_SUBMISSIONS_PORT", None),
    ("MSSANTE_IMAP_PORT", "imap"),
    ("MSSANTE_IMAP_TLS_PORT", None),
    ("MSSANTE_DIRECTORY_LDAPS_PORT", None),
    ("MSSANTE_WEB_PORT", None),
)


async def _scan(port: int, starttls: str | None, report: Path) -> dict[str, str]:
    args = ["testssl", "--quiet", "--color", "0", "--warnings", "batch", "-p", "-E", "-R",
            "--jsonfile", str(report)]
    if starttls:
        args += ["-t", starttls]
    proc = await asyncio.create_subprocess_exec(
        *args, f"127.0.0.1:{port}",
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    await asyncio.wait_for(proc.wait(), timeout=400)
    text = await asyncio.to_thread(report.read_text)
    return {e["id"]: e["finding"] for e in json.loads(text)}


KNOWN_EXCEPTIONS = {
    # GnuTLS (Debian's slapd) has no switch to refuse client-initiated renegotiation in
    # TLS 1.2; it is a CPU cost, not a weakness of the channel. docs/security.md says so.
    ("MSSANTE_DIRECTORY_LDAPS_PORT", "secure_client_renego"),
}


def _problems(findings: dict[str, str], variable: str = "") -> list[str]:
    """What a scan shows that the security rules forbid (empty when the port is right)."""
    problems = []
    for old in ("SSLv2", "SSLv3", "TLS1", "TLS1_1"):
        if findings.get(old) != "not offered":
            problems.append(f"{old}: {findings.get(old)}")
    for wanted in ("TLS1_2", "TLS1_3"):
        if not findings.get(wanted, "").startswith("offered"):
            problems.append(f"{wanted}: {findings.get(wanted)}")
    ciphers = {k: f for k, f in findings.items() if k.startswith(("cipher-tls", "cipher-ssl"))}
    if not any(k.startswith("cipher-tls1_2_") for k in ciphers):
        problems.append("no TLS 1.2 cipher listed")
    for key, finding in ciphers.items():
        if not key.startswith(("cipher-tls1_2_", "cipher-tls1_3_")):
            problems.append(f"{key}: {finding}")
        elif key.startswith("cipher-tls1_2_") and not (
            "ECDHE" in finding and ("GCM" in finding or "CHACHA20" in finding)
        ):
            problems.append(f"{key}: not ECDHE with AEAD: {finding}")
    if "supported" not in findings.get("secure_renego", "") or "not" in findings.get(
        "secure_renego", ""
    ):
        problems.append(f"secure_renego: {findings.get('secure_renego')}")
    if (variable, "secure_client_renego") not in KNOWN_EXCEPTIONS:
        finding = findings.get("secure_client_renego", "")
        if "not vulnerable" not in finding:
            problems.append(f"secure_client_renego: {finding}")
    return problems


@pytest.mark.timeout(600)
async def test_every_tls_listener_offers_tls12_plus_aead_only(
    serve_process: ServeProcess, tmp_path: Path,
) -> None:
    serve_process.start()
    scans = await asyncio.gather(*(
        _scan(serve_process.ports[variable], starttls, tmp_path / f"{variable}.json")
        for variable, starttls in LISTENERS
    ))
    problems = {
        variable: found
        for (variable, _), findings in zip(LISTENERS, scans, strict=True)
        if (found := _problems(findings, variable))
    }
    assert problems == {}
