"""``mssante pki``: issue, revoke and inspect certificates of the development PKI.

Only meaningful in embedded mode, where a local CA stands in for IGC-Santé: in production
the certificates come from IGC-Santé and ``pki issue`` / ``pki revoke`` refuse (exit 2).
``pki show`` works in both modes, on any certificate file.
"""

from __future__ import annotations

from pathlib import Path

import click
from cryptography import x509

from gateway.context import EXIT_USAGE, CliContext, fail, pass_cli
from trustspace.certs import (
    PkiError,
    fingerprint_sha256,
    idnat_from_certificate,
    is_expired,
    issuer_text,
    load_certificates,
    load_crl,
    san_dns_names,
    san_ip_addresses,
    structure_from_certificate,
    subject_text,
    verify_chain,
)
from trustspace.pki import KINDS, DevPki, ensure_dev_pki, issue_certificate, revoke_certificate


@click.group(name="pki")
def command() -> None:
    """Development PKI: issue test certificates, revoke them, inspect certificate files."""


def _dev_pki(cli: CliContext) -> DevPki:
    settings = cli.settings()
    if not settings.embedded:
        fail(
            "gateway.mode is production: there is no local CA to issue or revoke "
            "certificates; request them from IGC-Santé",
            EXIT_USAGE,
        )
    try:
        return ensure_dev_pki(settings)
    except PkiError as exc:
        fail(str(exc))
    raise AssertionError("unreachable")


@command.command(name="issue")
@click.option("--kind", type=click.Choice(KINDS), required=True,
              help="cps: a professional's personal certificate; app: an organisation's "
                   "applicative certificate; server: another operator's server certificate.")
@click.option("--idnat", default=None, help="idNatPS (cps): 8+RPPS (12 digits) or 0+ADELI (10).")
@click.option("--name", default=None, help='Person (cps) or service (app) name, "Dr Alice Martin".')
@click.option("--structure", default=None, help="FINESS (9) or SIRET (14) of the structure (app).")
@click.option("--domain", default=None, help="Operator domain (server), hopital-b.mssante.test.")
@click.option("--alt-name", "alt_names", multiple=True, metavar="NAME",
              help="Another DNS name or IP address the server certificate carries "
                   "(repeatable): --alt-name mx.hopital-b.example --alt-name 127.0.0.1.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Output directory (default: <data dir>/pki/issued).")
@click.option("--p12-password", default=None,
              help="Password of the PKCS#12 bundle (default: generated and printed once).")
@click.option("--expired", is_flag=True, help="Issue an already expired certificate (tests).")
@pass_cli
def issue(
    cli: CliContext, kind: str, idnat: str | None, name: str | None, structure: str | None,
    domain: str | None, alt_names: tuple[str, ...], out_dir: Path | None,
    p12_password: str | None, expired: bool,
) -> None:
    """Issue a certificate from the local development CA."""
    if alt_names and kind != "server":
        fail(f"--alt-name {alt_names[0]!r}: only server certificates carry other names",
             EXIT_USAGE)
    pki = _dev_pki(cli)
    target = out_dir if out_dir is not None else pki.directory / "issued"
    try:
        files = issue_certificate(
            pki, kind, idnat=idnat, name=name, structure=structure, domain=domain,
            out_dir=target, password=p12_password, expired=expired, extra_names=alt_names,
        )
    except PkiError as exc:
        fail(str(exc), EXIT_USAGE)
        return
    click.echo(f"subject:     {files.subject}")
    click.echo(f"sha256:      {files.fingerprint}")
    click.echo(f"certificate: {files.cert_file}")
    click.echo(f"key:         {files.key_file}")
    click.echo(f"chain:       {files.chain_file}")
    click.echo(f"pkcs12:      {files.p12_file}")
    if p12_password is None:
        # Shown once, on the operator's terminal only; it is never logged or stored.
        click.echo(f"pkcs12 password (shown once): {files.p12_password}")


@command.command(name="revoke")
@click.argument("cert_file", type=click.Path(path_type=Path))
@pass_cli
def revoke(cli: CliContext, cert_file: Path) -> None:
    """Revoke a certificate issued by the local CA and rewrite the CRL."""
    pki = _dev_pki(cli)
    try:
        crl = revoke_certificate(pki, cert_file)
    except PkiError as exc:
        fail(str(exc), EXIT_USAGE)
        return
    click.echo(f"revoked; CRL written to {crl}")


@command.command(name="show")
@click.argument("cert_file", type=click.Path(path_type=Path))
@pass_cli
def show(cli: CliContext, cert_file: Path) -> None:
    """Show a certificate: names, validity, fingerprint, idNatPS, trust."""
    try:
        chain = load_certificates(cert_file)
    except PkiError as exc:
        fail(str(exc), EXIT_USAGE)
        return
    cert = chain[0]
    click.echo(f"subject:     {subject_text(cert)}")
    click.echo(f"issuer:      {issuer_text(cert)}")
    click.echo(f"serial:      {cert.serial_number:x}")
    click.echo(f"not before:  {cert.not_valid_before_utc:%Y-%m-%d %H:%M:%S} UTC")
    click.echo(f"not after:   {cert.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC"
               + (" (EXPIRED)" if is_expired(cert) else ""))
    click.echo(f"sha256:      {fingerprint_sha256(cert)}")
    names = san_dns_names(cert) + san_ip_addresses(cert)
    if names:
        click.echo(f"names:       {', '.join(names)}")
    idnat = idnat_from_certificate(cert)
    if idnat:
        click.echo(f"idNatPS:     {idnat}")
    elif (structure := structure_from_certificate(cert)) is not None:
        click.echo(f"structure:   {structure}")
    click.echo(f"trust:       {_trust(cli, chain)}")


def _trust(cli: CliContext, chain: list[x509.Certificate]) -> str:
    """Whether the certificate chains to the configured anchors and is not revoked.

    In embedded mode the local CA's CRL is consulted too, so that a certificate revoked
    with ``pki revoke`` shows as such even when tls.crl_files is not configured.
    """
    settings = cli.settings()
    try:
        anchors = [
            c for p in settings.tls_anchor_files if p.exists()
            for c in load_certificates(p, "trust anchor (tls.anchors)")
        ]
        crl_paths = list(settings.tls_crl_files)
        local_crl = settings.pki_dir / "crl.pem"
        if settings.embedded and local_crl.exists() and local_crl not in crl_paths:
            crl_paths.append(local_crl)
        verify_chain(chain[0], chain[1:], anchors, [load_crl(p) for p in crl_paths])
    except PkiError as exc:
        return f"NOT TRUSTED: {exc}"
    return "valid, chains to a configured trust anchor"
