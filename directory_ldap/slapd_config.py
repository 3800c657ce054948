"""Writes the private configuration of the managed slapd under ``<data dir>/directory/``.

A generated ``slapd.conf`` (read with ``-f``) rather than cn=config: the file is rewritten at
every start from the settings, so the settings stay the one source of truth and nothing
drifts between restarts.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from directory_ldap import generations
from directory_ldap.layout import NATIONAL_BRANCH, branch_dn, service_dn
from directory_ldap.password_policy import policy_dn, slapd_lines

SCHEMA_DIR = Path("/etc/ldap/schema")
MODULE_DIR = Path("/usr/lib/ldap")
OUR_SCHEMA = Path(__file__).with_name("mssante.schema")
USER_SIZE_LIMIT = 500
"""Most entries one user search returns: address books never need more, bulk harvests stop.
Past it slapd ends the search with sizeLimitExceeded (4), which clients show
("Size limit exceeded"); the entries sent until then are kept."""
USER_PAGED_TOTAL = 5000
"""Most entries one user search returns in all when the client pages it (RFC 2696 simple
paged results, at most ``USER_SIZE_LIMIT`` per page): enough to browse a city's
professionals, far from a harvest of the national directory. Past it: sizeLimitExceeded."""

# Indexes are what an import pays for (every substring key of every value is a write), so only
# the attributes that address-book filters and `search()` put in a disjunction get substring
# keys: one unindexed branch of an OR makes slapd scan every entry.
SUBSTRING_ATTRIBUTES = (
    "mail", "mssanteMailUTF8", "cn", "sn", "givenName", "displayName", "o", "l")
# A few hundred distinct long labels shared by a million entries: `search()` matches a word
# against the list of labels itself (queries.LabelVocabulary) and asks slapd for the exact
# ones, so equality keys suffice (about a third of the import's index work saved).
LABEL_ATTRIBUTES = ("mssanteSpecialtyLabel", "mssanteProfessionLabel")
# Postal codes are searched by prefix only ("31" finds 31000 and 31400).
PREFIX_ATTRIBUTES = ("postalCode",)
EQUALITY_ATTRIBUTES = (
    *LABEL_ATTRIBUTES, "objectClass", "mssanteOrigin", "mssanteMailboxType",
    "mssanteListeRouge", "st",
    "mssanteStructureId", "mssanteStructureName", "mssanteIdNat", "mssanteRPPS", "mssanteADELI",
)
SEARCHED_ATTRIBUTES = (*SUBSTRING_ATTRIBUTES, *PREFIX_ATTRIBUTES, *LABEL_ATTRIBUTES)
"""Attributes free-text searches match by substring on an external server (README: index
them ``eq,sub`` there; no label vocabulary is kept for a server the gateway does not load)."""
MDB_MAXSIZE = 16 * 1024**3
GNUTLS_PRIORITY = (
    "SECURE256:+SECURE128:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"
    ":-CIPHER-ALL:+AES-256-GCM:+AES-128-GCM:+CHACHA20-POLY1305"
    ":-MAC-ALL:+AEAD:-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA:%SERVER_PRECEDENCE"
)
"""slapd's ``TLSCipherSuite`` (a GnuTLS priority string, checked with gnutls_priority_init):
TLS 1.2 and 1.3 only, AEAD suites only (AES-GCM, ChaCha20-Poly1305), ECDHE key exchange on
TLS 1.2 (forward secrecy), the server's order wins: the policy of ``trustspace.tls``."""


@dataclass(frozen=True)
class SlapdLayout:
    """Files and URLs of one managed slapd instance."""

    root: Path
    base_dn: str
    host: str
    port: int
    ldaps_port: int
    cert_file: Path
    key_file: Path
    ca_files: tuple[Path, ...]
    sync_writes: bool = True

    @property
    def conf_file(self) -> Path:
        return self.root / "slapd.conf"

    @property
    def db_dir(self) -> Path:
        return self.root / "db"

    @property
    def national_link(self) -> Path:
        """Symlink to the current generation of the national branch's own MDB database;
        replacing it (one rename) is how an import switches from old data to new."""
        return self.root / "national"

    @property
    def generations_dir(self) -> Path:
        return self.root / "national.d"

    @property
    def pid_file(self) -> Path:
        return self.root / "slapd.pid"

    @property
    def restart_marker(self) -> Path:
        """Present when slapd is stopped on purpose, so its watcher restarts it at once."""
        return self.root / "restart.requested"

    @property
    def ca_bundle(self) -> Path:
        return self.root / "ca-bundle.pem"

    @property
    def log_file(self) -> Path:
        return self.root / "slapd.log"

    @property
    def crl_file(self) -> Path:
        """The revocation lists slapd checks client certificates against (PEM, written by
        the gateway from the same sources as its own listeners; see :func:`write_crls`)."""
        return self.root / "crl-bundle.pem"

    @property
    def socket_path(self) -> Path:
        """The ldapi socket; sun_path holds 108 bytes, so long data dirs fall back to /tmp."""
        path = self.root / "ldapi"
        if len(str(path)) < 100:
            return path
        digest = hashlib.sha256(str(self.root).encode()).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / f"mssante-ldapi-{digest}"

    @property
    def ldapi_url(self) -> str:
        return "ldapi://" + urllib.parse.quote(str(self.socket_path), safe="")

    @property
    def ldap_url(self) -> str:
        return f"ldap://{self.host}:{self.port}"

    @property
    def ldaps_url(self) -> str:
        return f"ldaps://{self.host}:{self.ldaps_port}"

    @property
    def listen_urls(self) -> str:
        return " ".join((self.ldap_url, self.ldaps_url, self.ldapi_url))


def _indexes() -> str:
    lines = [f"index {a} eq,sub" for a in SUBSTRING_ATTRIBUTES]
    lines += [f"index {a} eq,subinitial" for a in PREFIX_ATTRIBUTES]
    lines += [f"index {a} eq" for a in EQUALITY_ATTRIBUTES]
    return "\n".join(lines)


def _access(base: str, svc: str) -> str:
    """Limits and access control, repeated in each database (first match wins; the rootdn,
    our service identity, bypasses it all)."""
    return f"""\
limits dn.exact="{svc}" size=unlimited time=unlimited
limits users size.soft={USER_SIZE_LIMIT} size.hard={USER_SIZE_LIMIT} \
	size.pr={USER_SIZE_LIMIT} size.prtotal={USER_PAGED_TOTAL}

access to attrs=userPassword
\tby anonymous auth
\tby * none
access to attrs=mssanteRowHash
\tby * none
access to dn.exact="{policy_dn(base)}"
\tby * none
access to filter=(mssanteListeRouge=TRUE)
\tby * none
access to dn.subtree="{base}"
\tby users read
\tby anonymous auth
\tby * none
access to *
\tby * none
"""


def _crl_line(layout: SlapdLayout) -> str:
    """``TLSCRLFile`` when the gateway has CRLs. GnuTLS (Debian's build) checks a client
    certificate against the CRL of its issuer when one is loaded and accepts the other CAs'
    certificates unchecked (``TLSCRLCheck`` is OpenSSL-only: this build accepts it and does
    nothing with it, so it is not written). With ``TLSVerifyClient try`` the handshake of a
    revoked certificate fails, so no SASL EXTERNAL identity can come from it."""
    try:
        has_crl = layout.crl_file.stat().st_size > 0
    except OSError:
        has_crl = False
    return f"TLSCRLFile {layout.crl_file}\n" if has_crl else ""


def write_crls(layout: SlapdLayout, pem: bytes) -> bool:
    """Replaces slapd's CRL bundle (atomically); True when its content changed."""
    try:
        if layout.crl_file.read_bytes() == pem:
            return False
    except OSError:
        pass
    layout.root.mkdir(parents=True, exist_ok=True)
    tmp = layout.crl_file.with_suffix(".tmp")
    tmp.write_bytes(pem)
    os.chmod(tmp, 0o600)  # slapd runs as the gateway's user; nobody else needs it
    tmp.replace(layout.crl_file)
    return True


def render(layout: SlapdLayout, national_dir: Path | None = None) -> str:
    """The slapd.conf text for ``layout``; ``national_dir`` overrides where the national
    database lives (``slapadd`` building a new generation)."""
    base = layout.base_dn
    svc = service_dn(base)
    national_suffix = branch_dn(base, NATIONAL_BRANCH)
    uid, gid = os.getuid(), os.getgid()
    schemas = "\n".join(
        f"include {SCHEMA_DIR / name}"
        for name in ("core.schema", "cosine.schema", "inetorgperson.schema")
    )
    nosync = "" if layout.sync_writes else "dbnosync"
    return f"""\
# Generated by mssante-gateway at every start from [directory] and [tls]; edits are lost.
{schemas}
include {OUR_SCHEMA}

modulepath {MODULE_DIR}
moduleload back_mdb.so
# {{ARGON2}} userPassword values: the accounts layer publishes argon2id application passwords.
moduleload argon2.so
# Lock-out of LDAP binds after repeated failures (directory_ldap/password_policy.py).
moduleload ppolicy.so

pidfile {layout.pid_file}
argsfile {layout.root / 'slapd.args'}
loglevel stats
# slapadd indexes in its main thread: measured faster than more threads on 2 cores, where
# the gateway's extract reader feeds it from the other core.
tool-threads 1

# TLS 1.2 minimum (3.3 = TLS 1.2) on LDAPS and StartTLS; client certificates optional
# (SASL EXTERNAL over LDAPS, RFC 4513 §5.2.3) but verified when presented: with GnuTLS,
# "allow" let an expired or revoked certificate through to SASL EXTERNAL; "try" ends the
# handshake on a certificate that does not verify (unknown CA, expired, revoked).
# Debian's slapd uses GnuTLS, which takes versions and suites from the priority string
# only (TLSProtocolMin alone let TLS 1.0 through).
TLSCertificateFile {layout.cert_file}
TLSCertificateKeyFile {layout.key_file}
TLSCACertificateFile {layout.ca_bundle}
TLSProtocolMin 3.3
TLSCipherSuite {GNUTLS_PRIORITY}
TLSVerifyClient try
{_crl_line(layout)}
# No credential in clear: simple binds need TLS (ssf 128+) or the local socket (ssf 71).
security simple_bind=71
# Anonymous users may bind (to authenticate) but do nothing else (RFC 4513 §5.1.1).
disallow bind_anon
require authc

sasl-secprops none
# The gateway process itself, over ldapi (SASL EXTERNAL, peer credentials) = service identity.
authz-regexp "^gidNumber={gid}\\\\+uidNumber={uid},cn=peercred,cn=external,cn=auth$" "{svc}"
# A client certificate whose subject carries an e-mail address maps to that mailbox entry.
authz-regexp "^(.+,)?email=([^,]+)(,.+)?,cn=external,cn=auth$" "ldap:///{base}??sub?(&(mail=$2)(mssanteOrigin=local))"
authz-regexp "^(.+,)?email=([^,]+)(,.+)?$" "ldap:///{base}??sub?(&(mail=$2)(mssanteOrigin=local))"

sizelimit {USER_SIZE_LIMIT}
timelimit 10

# Substring keys: 2 to 4 leading/trailing characters, any 3 consecutive ones, so the 3-letter
# fragments address books send ("*mar*") are answered from the index.
index_substr_if_minlen 2
index_substr_if_maxlen 4
index_substr_any_len 3
index_substr_any_step 1

# cn=config, writable by the gateway only (over ldapi): rewriting olcTLSCRLFile there makes
# slapd build a new TLS context, so a new CRL applies without a restart. Nothing written
# there outlives the process: this file is the configuration at every start.
database config
rootdn "{svc}"
access to *
\tby dn.exact="{svc}" manage
\tby * none

# The national extract: its own MDB database, glued under the base (declared before its
# superior). Each import builds a complete new generation offline (slapadd) and switches the
# symlink, so readers see the old data or the new, never a mix.
database mdb
suffix "{national_suffix}"
subordinate
rootdn "{svc}"
directory {national_dir or layout.national_link}
maxsize {MDB_MAXSIZE}
checkpoint 1024 5
{nosync}
{_indexes()}

{_access(base, svc)}
# This operator's mailboxes (people, organisations, applications).
database mdb
suffix "{base}"
rootdn "{svc}"
directory {layout.db_dir}
maxsize {MDB_MAXSIZE}
# MDB writes are durable at commit; checkpoints keep the log short.
checkpoint 1024 5
{nosync}
{_indexes()}

{_access(base, svc)}
{slapd_lines(base)}"""


def write(layout: SlapdLayout) -> None:
    """Writes slapd.conf and the CA bundle; creates the database directories (0700)."""
    layout.root.mkdir(parents=True, exist_ok=True)
    layout.db_dir.mkdir(mode=0o700, exist_ok=True)
    generations.ensure_current(layout)
    bundle = b"".join(p.read_bytes() for p in layout.ca_files if p.exists())
    if not bundle:
        # Without anchors nothing can verify a client certificate; the server cert still works.
        bundle = layout.cert_file.read_bytes()
    layout.ca_bundle.write_bytes(bundle)
    write_conf(layout)


def write_conf(layout: SlapdLayout) -> None:
    """Writes slapd.conf alone (before each spawn too: a restarted slapd then loads the CRL
    bundle even if it appeared after the first start)."""
    tmp = layout.conf_file.with_suffix(".tmp")
    tmp.write_text(render(layout), encoding="utf-8")
    os.chmod(tmp, 0o600)
    tmp.replace(layout.conf_file)
