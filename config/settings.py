"""Typed settings of the gateway: every tunable, its one default and its documentation.

Like Postfix's ``mail_params.h``, this module is the single place where a default lives.
Each field carries metadata used by the loader (validation) and by the template writer
(the commented ``mssante.toml`` written at first start), so the documentation a user reads
can never drift from the value the code uses.

Sections are frozen dataclasses; :class:`Settings` groups them and resolves the paths that
default to the data directory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MiB = 1024 * 1024

DEV_CERT_POLICY_ARC = "2.25.116169463683685016117987542345449155023.3"
"""Certificate policy OIDs of the development PKI: the project's own UUID arc (the one of the
LDAP schema, ``directory_ldap/mssante.schema``), branch .3. One policy per certificate kind,
so that a certificate's use is read from its policy, as IGC-Santé certificates are."""
DEV_PERSONAL_POLICY = f"{DEV_CERT_POLICY_ARC}.1"
DEV_APPLICATION_POLICY = f"{DEV_CERT_POLICY_ARC}.2"
DEV_SERVER_POLICY = f"{DEV_CERT_POLICY_ARC}.3"


def opt(default: Any, doc: str, **rules: Any) -> Any:
    """A settings field: default value, one-line documentation and validation rules.

    Rules understood by the loader: ``min``, ``max`` (numbers), ``choices`` (strings),
    ``port=True`` (0-65535, 0 meaning an ephemeral port chosen by the system).
    """
    meta = {"doc": doc, **rules}
    if isinstance(default, (list, dict)):
        raise TypeError("use tuples or a default_factory for containers")
    return field(default=default, metadata=meta)


def opt_map(doc: str) -> Any:
    """A settings field that is a table of string to string (for example ``[transport]``)."""
    return field(default_factory=dict, metadata={"doc": doc})


@dataclass(frozen=True)
class GatewaySettings:
    """[gateway]: identity of this operator and process-wide behaviour."""

    mode: str = opt(
        "embedded",
        "embedded: create a development PKI, trust space and managed slapd under the data dir; "
        "production: certificates, anchors and trust space come from this file only",
        choices=("embedded", "production"),
    )
    domains: tuple[str, ...] = opt(
        ("mssante.test",), "mail domains served by this operator (the first one is the primary)"
    )
    hostname: str = opt(
        "", "public host name used in SMTP banners and Received headers (default: mx.<domain>)"
    )
    listen: str = opt("127.0.0.1", "address every service listens on (0.0.0.0 for all)")
    shutdown_grace: float = opt(
        30.0, "seconds running sessions get to finish after SIGTERM/SIGINT", min=0, max=3600
    )
    proxy_protocol_from: tuple[str, ...] = opt(
        (), "load balancers (addresses or networks) whose connections to the SMTP and IMAP "
        "listeners start with a PROXY protocol v2 header giving the client's address "
        "(HAProxy send-proxy-v2); from anyone else a header is never read", networks=True,
    )
    proxy_protocol_timeout: float = opt(
        10.0, "seconds a listed balancer has to send the PROXY header", min=0.1, max=300
    )
    workers: int = opt(
        0, "processes serving SMTP and IMAP sessions under one supervisor that runs the "
        "background jobs and the portal (0: one per CPU; 1: everything in one process)",
        min=0, max=256,
    )
    log_format: str = opt("kv", "log line format", choices=("kv", "json"))
    log_level: str = opt("info", "log level", choices=("debug", "info", "warning", "error"))


@dataclass(frozen=True)
class DatabaseSettings:
    """[database]: where accounts, mailboxes, queue and proofs live."""

    url: str = opt(
        "",
        "SQLAlchemy URL: sqlite+aiosqlite:///path or postgresql+asyncpg://user:pass@host/db "
        "(default: SQLite file mssante.db in the data dir)",
    )
    pool_size: int = opt(10, "connections kept open (PostgreSQL)", min=1, max=500)
    busy_timeout_ms: int = opt(
        10000, "how long SQLite waits for a lock before failing", min=0, max=600000
    )
    connect_timeout: float = opt(
        5.0, "seconds to wait for the database server to answer", min=0.1, max=120
    )


@dataclass(frozen=True)
class StorageSettings:
    """[storage]: the encrypted body store and retention."""

    key_file: str = opt(
        "", "master key file (created 0600 at first start; default: master.key in the data dir)"
    )
    segment_size: int = opt(
        65536, "plaintext bytes per AES-256-GCM segment of a stored body", min=4096, max=16 * MiB
    )
    body_retention_days: int = opt(
        92, "days message bodies are kept before purge, counted from their arrival (a change "
        "applies to messages already stored; proofs are kept forever)", min=1
    )
    search_text_max: int = opt(
        256 * 1024, "decoded text characters of a message indexed (sealed) at accept time for "
        "SEARCH BODY/TEXT; a longer message is decoded when searched (0: never index)", min=0,
    )


@dataclass(frozen=True)
class RetentionSettings:
    """[retention]: what the owner is told before a purge, and how long traces are kept."""

    expiry_digest: bool = opt(
        True,
        "send each mailbox owner one message in INBOX listing the messages whose body will be "
        "purged (subject, correspondent, date), expiry_digest_days before; once per message",
    )
    expiry_digest_days: int = opt(
        7, "days before a body's purge that its owner is told of it", min=1, max=365
    )
    traces_days: int = opt(
        365, "days session traces (connections, authentications) are kept", min=1
    )


@dataclass(frozen=True)
class ProofSettings:
    """[proofs]: when the proof ledger is signed (Ed25519 checkpoints, docs/architecture.md §3)."""

    checkpoint_interval: float = opt(
        300.0,
        "seconds between signed checkpoints while unsigned records exist (one is also signed "
        "at start-up and at shutdown)",
        min=1, max=86400,
    )
    checkpoint_every_records: int = opt(
        10000,
        "sign a checkpoint as soon as this many records are unsigned, without waiting for "
        "checkpoint_interval",
        min=1, max=10_000_000,
    )
    checkpoint_dir: str = opt(
        "",
        "append-only directory where every signed checkpoint is also written, outside the "
        "database (default: checkpoints/ in the data dir; best on another disk or synced away)",
    )
    witness_url: str = opt(
        "",
        "HTTPS endpoint each new signed checkpoint is POSTed to (text/plain, the C2SP signed "
        "note), retried until accepted; the server certificate is verified (empty: none)",
    )
    witness_ca_file: str = opt(
        "", "CA certificates that may sign the witness_url server (default: the system's)"
    )
    witness_address: str = opt(
        "",
        "e-mail address each new signed checkpoint is sent to, through the system mail "
        "(outbox / [notify]), never through the trust-space relay (empty: none)",
    )
    witness_timeout: float = opt(
        10.0, "seconds one POST to witness_url may take", min=0.5, max=300
    )


@dataclass(frozen=True)
class TlsSettings:
    """[tls]: server certificate, trust anchors (IGC-Santé) and revocation lists."""

    cert_file: str = opt(
        "", "server certificate chain, PEM (embedded default: pki/server.pem in the data dir)"
    )
    key_file: str = opt("", "server private key, PEM (embedded default: pki/server.key)")
    anchors: tuple[str, ...] = opt(
        (), "PEM files of the trust anchors peers must chain to (embedded default: pki/ca.pem)"
    )
    crl_files: tuple[str, ...] = opt(
        (),
        "PEM or DER CRL files checked for peer certificates, re-read when they change "
        "(embedded: pki/crl.pem of the development CA is always added)",
    )
    crl_urls: tuple[str, ...] = opt(
        (),
        "https:// URLs of CRLs (IGC-Santé), fetched at start and every crl_refresh seconds; "
        "when a fetch fails the last good list stays in force (copy kept in pki/crl-cache)",
    )
    crl_refresh: float = opt(
        3600.0, "seconds between downloads of crl_urls (a failed one is retried within 300 s)",
        min=5, max=7 * 86400,
    )
    crl_fetch_timeout: float = opt(30.0, "seconds to wait for a CRL server", min=1, max=600)
    crl_file_check_interval: float = opt(
        5.0, "seconds between checks of crl_files for changes (a revocation takes effect "
        "within this delay)", min=0.05, max=3600,
    )
    crl_check: str = opt(
        "leaf",
        "leaf: the peer certificate is checked against its CA's CRL when one is loaded (a CA "
        "without a CRL is not checked); chain: every CA certificate up to the anchor too, and "
        "a CA without a CRL is refused",
        choices=("leaf", "chain"),
    )
    handshake_timeout: float = opt(
        10.0,
        "seconds a client gets to complete a TLS handshake (implicit TLS and STARTTLS, SMTP "
        "and IMAP); the connection counts against its address's limit meanwhile",
        min=0.1, max=300,
    )
    crl_expired: str = opt(
        "refuse",
        "once a CA's CRL is past its nextUpdate and no newer one could be had: refuse "
        "(fail-closed) that CA's certificates, or accept them checked against the stale list "
        "(fail-open, logged)",
        choices=("refuse", "accept"),
    )


@dataclass(frozen=True)
class SmtpSettings:
    """[smtp]: relay between operators, submission for users, outbound queue."""

    relay_port: int = opt(
        2525, "relay between operators (STARTTLS, mutual TLS); 25 in production", port=True
    )
    submission_port: int = opt(2587, "submission with STARTTLS; 587 in production", port=True)
    submissions_port: int = opt(2465, "submission with implicit TLS; 465 in production", port=True)
    max_message_size: int = opt(
        40 * MiB, "largest message accepted, in octets (announced as SIZE)", min=1024
    )
    max_attachment_size: int = opt(
        10 * MiB, "largest attachment, decoded octets (MSSanté: 10 MB)", min=1024
    )
    max_recipients: int = opt(100, "recipients per message", min=1, max=10000)
    max_line_length: int = opt(
        998 * 10, "longest command or DATA line accepted, in octets", min=1000
    )
    max_header_count: int = opt(500, "header fields per message", min=10)
    max_header_size: int = opt(256 * 1024, "total size of the header section, octets", min=1024)
    max_bad_commands: int = opt(10, "bad commands before 421 and disconnect", min=1)
    idle_timeout: float = opt(300.0, "seconds a session may stay silent", min=1)
    session_timeout: float = opt(3600.0, "seconds a whole session may last", min=1)
    max_connections_per_ip: int = opt(
        20, "simultaneous connections from one address, each counted from the TCP accept "
        "(TLS handshake included) until it closes", min=1,
    )
    queue_lifetime_hours: float = opt(
        120.0, "hours a message may wait in the outbound queue before it bounces", min=0.01
    )
    retry_schedule: tuple[str, ...] = opt(
        ("60", "300", "900", "1800", "3600"),
        "seconds between delivery attempts; the last value repeats",
    )
    delay_warning_hours: float = opt(
        4.0, "hours after which the sender gets one delay DSN", min=0.01
    )
    outbound_concurrency_per_destination: int = opt(
        4, "simultaneous connections to one destination", min=1, max=100
    )
    outbound_lease: float = opt(
        120.0, "seconds a node holds an in-flight delivery without renewing its claim (renewed "
        "every third of it while the delivery runs): rows of a node that died are taken up by "
        "the others after this long", min=10, max=3600,
    )
    relay_sender_binding: str = opt(
        "trust-space",
        "relay: which sender domains a peer may use (never ours, in MAIL FROM or From:); "
        "none: envelope sender in the trust space, From: unchecked; trust-space: envelope "
        "and From: domains in the trust space; certificate: also named by the peer "
        "certificate or mapped to it in [relay_peers]",
        choices=("none", "trust-space", "certificate"),
    )


# The relay accepts operator server certificates only; SASL EXTERNAL opens PER mailboxes with
# personal certificates and APP mailboxes with applicative ones only. The real IGC-Santé policy
# OIDs are not shipped as defaults: take them from the published certification policies.
@dataclass(frozen=True)
class CertificateSettings:
    """[certificates]: policy OIDs telling server, applicative and personal certificates apart."""

    server_policies: tuple[str, ...] = opt(
        (DEV_SERVER_POLICY,),
        "policy OIDs of operator server certificates (add those of the IGC-Santé server "
        "certificate policy in production; the default is the development PKI's)",
    )
    application_policies: tuple[str, ...] = opt(
        (DEV_APPLICATION_POLICY,),
        "policy OIDs of organisation certificates for applicative mailboxes (IGC-Santé ORG)",
    )
    personal_policies: tuple[str, ...] = opt(
        (DEV_PERSONAL_POLICY,),
        "policy OIDs of personal certificates of health professionals (CPS cards, PS)",
    )


@dataclass(frozen=True)
class ImapSettings:
    """[imap]: the IMAP server."""

    port: int = opt(2143, "IMAP with STARTTLS; 143 in production", port=True)
    tls_port: int = opt(2993, "IMAP with implicit TLS; 993 in production", port=True)
    max_line_length: int = opt(65536, "longest command line, octets", min=1024)
    max_literal_size: int = opt(64 * MiB, "largest literal (APPEND), octets", min=1024)
    max_bad_commands: int = opt(20, "consecutive BAD replies before BYE", min=1)
    idle_timeout: float = opt(1860.0, "seconds of inactivity (RFC 9051: at least 30 min)", min=60)
    login_timeout: float = opt(
        60.0, "seconds of inactivity before BYE while a session is not yet authenticated",
        min=0.1, max=3600,
    )
    client_workarounds: tuple[str, ...] = opt(
        (), "named client quirk switches (see imap/workarounds.py), off unless listed"
    )
    quota_storage_mb: int = opt(
        2048, "mailbox storage quota reported by GETQUOTAROOT (RFC 9208), MiB", min=1
    )
    metadata_max_size: int = opt(
        16384, "largest METADATA entry value (RFC 5464 MAXSIZE), octets", min=64,
    )
    metadata_max_entries: int = opt(
        100, "METADATA entries one user may keep per mailbox, and on the server "
        "(RFC 5464 TOOMANY)", min=1,
    )
    max_update_contexts: int = opt(
        16, "live SEARCH/SORT results (RFC 5267 RETURN (UPDATE)) one session keeps for its "
        "selected mailbox (RFC 5267 §4.3.1: at least one); past it the result comes with "
        "NO [NOUPDATE]", min=1,
    )
    max_connections_per_address: int = opt(
        200, "simultaneous IMAP connections from one client address, each counted from the "
        "TCP accept (TLS handshake included) until it closes", min=1,
    )
    index_cache_messages: int = opt(
        500_000, "messages kept in the in-memory folder indexes (about 200 octets each)",
        min=1000,
    )


@dataclass(frozen=True)
class DirectorySettings:
    """[directory]: the LDAP directory (managed slapd unless url is set)."""

    enabled: bool = opt(True, "run the directory (false: no LDAP service, no publishing)")
    url: str = opt("", "external LDAP server (ldaps://…); empty: manage Debian's slapd")
    base_dn: str = opt("dc=mssante,dc=test", "base of the directory tree")
    bind_dn: str = opt("", "service bind DN for an external server")
    bind_password: str = opt("", "service bind password for an external server")
    client_cert_file: str = opt(
        "", "client certificate (PEM) for SASL EXTERNAL to an external server (no password)"
    )
    client_key_file: str = opt("", "private key (PEM) of client_cert_file")
    port: int = opt(2389, "managed slapd, LDAP with StartTLS", port=True)
    ldaps_port: int = opt(2636, "managed slapd, LDAPS", port=True)
    slapd_path: str = opt("/usr/sbin/slapd", "slapd binary of the managed directory")
    sync_writes: bool = opt(
        True, "managed slapd: fsync every MDB commit; false keeps integrity but may lose the "
        "last writes on a power cut, for about 4x faster bulk imports",
    )
    require_in_directory: bool = opt(
        False, "submission policy: refuse recipients not found in the directory"
    )


@dataclass(frozen=True)
class WebSettings:
    """[web]: portal, autoconfig, health and metrics over HTTPS."""

    port: int = opt(8443, "HTTPS portal, autoconfig, health and metrics; 443 in production",
                    port=True)
    enabled: bool = opt(True, "serve the HTTPS side (portal, autoconfig, /healthz, /metrics)")
    metrics_from: tuple[str, ...] = opt(
        ("127.0.0.1", "::1"),
        "addresses or networks allowed to read /metrics (others get 403)", networks=True,
    )
    public_url: str = opt(
        "", "address of the portal in the links of system e-mails "
        "(default: https://<hostname>:<port>)"
    )
    session_idle: float = opt(
        1800.0, "seconds without a request after which a portal session ends", min=60,
        max=86400,
    )
    session_lifetime: float = opt(
        43200.0, "seconds after sign-in after which a portal session ends in any case",
        min=300, max=604800,
    )
    cps_port: int = opt(
        8444, "HTTPS listener of the portal that requires a client certificate (CPS card "
        "login); 0 picks a free port", port=True,
    )


@dataclass(frozen=True)
class NotifySettings:
    """[notify]: system e-mails to usual addresses (links, codes, decisions) through a smarthost."""

    smarthost: str = opt(
        "", "host name of the notification smarthost; empty: write them to <data dir>/outbox "
        "(embedded mode). Never the trust-space relay"
    )
    port: int = opt(587, "port of the notification smarthost", port=True)
    tls: str = opt("starttls", "TLS with the smarthost, always required: STARTTLS or "
                   "implicit TLS", choices=("starttls", "implicit"))
    ca_file: str = opt("", "CA bundle (PEM) the smarthost's certificate must chain to "
                       "(default: the system's)")
    username: str = opt("", "user name for SMTP AUTH at the smarthost (empty: no AUTH)")
    password_file: str = opt("", "file holding the SMTP AUTH password (kept out of this file)")
    from_address: str = opt("", "sender of system e-mails (default: "
                            "ne-pas-repondre@<primary domain>)")
    retry_interval: float = opt(60.0, "seconds between retries of system e-mails the "
                                "smarthost did not take (they wait in <data dir>/notify-queue)",
                                min=1, max=86400)
    timeout: float = opt(30.0, "seconds a smarthost conversation may take", min=1, max=600)


@dataclass(frozen=True)
class TrustSpaceSettings:
    """[trustspace]: the MSSanté whitelist of domains."""

    file: str = opt(
        "", "whitelist XML file (embedded default: trustspace.xml in the data dir)"
    )
    url: str = opt("", "HTTPS URL of the published whitelist; empty: file only")
    refresh_interval: float = opt(86400.0, "seconds between refreshes from url", min=60)
    ca_file: str = opt(
        "",
        "PEM file of the CA(s) the whitelist server must chain to (default: the [tls] anchors)",
    )
    fetch_timeout: float = opt(30.0, "seconds to wait for the whitelist server", min=1, max=600)
    max_size: int = opt(
        32 * MiB, "largest whitelist document accepted, in octets", min=1024, max=1024 * MiB
    )
    file_check_interval: float = opt(
        5.0, "seconds between checks of the local whitelist file for changes", min=0.05, max=3600
    )


@dataclass(frozen=True)
class AuthSettings:
    """[auth]: password guessing: growing delays, temporary locks and an argon2 budget."""

    delay_after_failures: int = opt(
        3, "failed logins of one account before its answers are delayed", min=1
    )
    address_delay_after_failures: int = opt(
        10, "failed logins from one client address before its answers are delayed", min=1
    )
    delay_initial: float = opt(
        1.0, "first delay, seconds; it doubles with each further failure", min=0, max=60
    )
    delay_max: float = opt(16.0, "longest delay before an answer, seconds", min=0, max=600)
    lock_after_failures: int = opt(
        10, "failed logins of one account before it is locked for lock_duration", min=1
    )
    address_lock_after_failures: int = opt(
        50, "failed logins from one client address before it is locked for lock_duration",
        min=1,
    )
    lock_duration: float = opt(
        900.0, "seconds a lock lasts; every login is refused with the usual failure reply",
        min=0.01, max=86400,
    )
    failure_window: float = opt(
        900.0, "seconds without a failure after which failures are forgotten",
        min=0.01, max=86400,
    )
    address_hash_budget: int = opt(
        30, "password verifications (argon2) one client address may cause per budget window; "
        "beyond it, logins fail without being checked", min=1,
    )
    hash_budget_window: float = opt(
        60.0, "seconds of the address_hash_budget window", min=0.01, max=86400
    )
    cache_ttl: float = opt(
        60.0, "seconds a verified application password or certificate login is remembered "
        "(keyed by a per-process HMAC of the credentials, never the password; forgotten at "
        "once when access changes: revocation, suspension, closure, password change)",
        min=0, max=3600,
    )
    negative_cache_ttl: float = opt(
        5.0, "seconds a wrong password is remembered (answered without argon2, still "
        "counted by the guessing limits)", min=0, max=300,
    )


@dataclass(frozen=True)
class PscSettings:
    """[psc]: Pro Santé Connect (OpenID Connect) for the portal and for mail clients."""

    issuer: str = opt(
        "", "PSC issuer URL (its /.well-known/openid-configuration is read); empty: Pro "
        "Santé Connect is off (no button, no XOAUTH2/OAUTHBEARER)"
    )
    client_id: str = opt("", "client identifier of this operator at PSC")
    client_secret: str = opt(
        "", "client secret at PSC (token and introspection endpoints); prefer the "
        "MSSANTE_PSC_CLIENT_SECRET variable to the file"
    )
    jwks: str = opt(
        "", "issuer's signing keys: a JWKS file or an https:// URL (default: the discovery "
        "document's jwks_uri)"
    )
    introspection_url: str = opt(
        "", "RFC 7662 introspection endpoint for opaque access tokens; empty: JWTs only"
    )
    id_claim: tuple[str, ...] = opt(
        ("SubjectNameID", "preferred_username"),
        "claims holding the idNatPS, the first present wins",
    )
    audience: str = opt("", "audience required in access tokens (default: client_id)")
    leeway: float = opt(
        30.0, "seconds of clock difference allowed on exp, nbf and iat", min=0, max=300
    )
    scope: str = opt("openid scope_all", "scopes asked for in the portal's login")
    ca_file: str = opt(
        "", "PEM file of the CA(s) PSC's HTTPS servers must chain to (default: the system's)"
    )
    http_timeout: float = opt(10.0, "seconds to wait for PSC's HTTPS endpoints", min=1,
                              max=120)
    jwks_max_age: float = opt(
        3600.0, "seconds the issuer's keys are kept before they are read again", min=10
    )
    jwks_min_refresh: float = opt(
        60.0, "at most one early re-read of the keys per this many seconds, when a token "
        "names an unknown key (key rotation)", min=1,
    )
    introspection_max_age: float = opt(
        300.0, "longest time an introspection answer is remembered (never past the token's "
        "own expiry)", min=0, max=3600,
    )

    @property
    def enabled(self) -> bool:
        return bool(self.issuer)

    @property
    def expected_audience(self) -> str:
        return self.audience or self.client_id


@dataclass(frozen=True)
class Settings:
    """All settings, plus the data directory and the file they came from."""

    data_dir: Path
    config_file: Path
    gateway: GatewaySettings = field(default_factory=GatewaySettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    proofs: ProofSettings = field(default_factory=ProofSettings)
    tls: TlsSettings = field(default_factory=TlsSettings)
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    certificates: CertificateSettings = field(default_factory=CertificateSettings)
    imap: ImapSettings = field(default_factory=ImapSettings)
    directory: DirectorySettings = field(default_factory=DirectorySettings)
    web: WebSettings = field(default_factory=WebSettings)
    notify: NotifySettings = field(default_factory=NotifySettings)
    trustspace: TrustSpaceSettings = field(default_factory=TrustSpaceSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    psc: PscSettings = field(default_factory=PscSettings)
    transport: dict[str, str] = field(
        default_factory=dict,
        metadata={
            "doc": 'transport overrides, domain = "host:port" (like Postfix transport maps)'
        },
    )
    relay_peers: dict[str, tuple[str, ...]] = field(
        default_factory=dict,
        metadata={
            "doc": 'relay peers: "certificate DNS name" or "sha256:FINGERPRINT" = [sender '
            "domains], more domains a peer may send for with relay_sender_binding = "
            '"certificate"'
        },
    )

    # -- resolved values -------------------------------------------------------------
    def path(self, value: str, default_name: str) -> Path:
        """A configured path, relative to the data dir, or the default name in the data dir."""
        p = Path(value) if value else Path(default_name)
        return p if p.is_absolute() else self.data_dir / p

    @property
    def primary_domain(self) -> str:
        return self.gateway.domains[0]

    @property
    def hostname(self) -> str:
        return self.gateway.hostname or f"mx.{self.primary_domain}"

    @property
    def embedded(self) -> bool:
        return self.gateway.mode == "embedded"

    @property
    def database_url(self) -> str:
        if self.database.url:
            return self.database.url
        return f"sqlite+aiosqlite:///{self.data_dir / 'mssante.db'}"

    @property
    def key_file(self) -> Path:
        return self.path(self.storage.key_file, "master.key")

    @property
    def checkpoint_dir(self) -> Path:
        return self.path(self.proofs.checkpoint_dir, "checkpoints")

    @property
    def proof_origin(self) -> str:
        """First line of the signed checkpoints: names this operator's ledger."""
        return f"{self.hostname}/proofs"

    @property
    def pki_dir(self) -> Path:
        return self.data_dir / "pki"

    @property
    def tls_cert_file(self) -> Path:
        return self.path(self.tls.cert_file, "pki/server.pem")

    @property
    def tls_key_file(self) -> Path:
        return self.path(self.tls.key_file, "pki/server.key")

    @property
    def tls_anchor_files(self) -> tuple[Path, ...]:
        if self.tls.anchors:
            return tuple(self.path(a, a) for a in self.tls.anchors)
        return (self.pki_dir / "ca.pem",) if self.embedded else ()

    @property
    def tls_crl_files(self) -> tuple[Path, ...]:
        return tuple(self.path(c, c) for c in self.tls.crl_files)

    @property
    def trustspace_file(self) -> Path:
        return self.path(self.trustspace.file, "trustspace.xml")

    def is_local_domain(self, domain: str) -> bool:
        return domain.lower().rstrip(".") in {d.lower() for d in self.gateway.domains}


SECTIONS: dict[str, type] = {
    "gateway": GatewaySettings,
    "database": DatabaseSettings,
    "storage": StorageSettings,
    "retention": RetentionSettings,
    "proofs": ProofSettings,
    "tls": TlsSettings,
    "smtp": SmtpSettings,
    "certificates": CertificateSettings,
    "imap": ImapSettings,
    "directory": DirectorySettings,
    "web": WebSettings,
    "notify": NotifySettings,
    "trustspace": TrustSpaceSettings,
    "auth": AuthSettings,
    "psc": PscSettings,
}
"""Section name in the TOML file → its dataclass. ``[transport]`` and ``[relay_peers]`` are
free tables."""
