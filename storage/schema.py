"""The database schema as SQLAlchemy Core tables (hot paths query these directly).

Timestamps are :class:`~storage.types.UTCDateTime`; JSON documents are canonical text.
Changes to this module need an Alembic revision in ``storage/migrations/versions`` (a test
compares the migrated database with this metadata on both engines).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
)

from storage.types import BigId, JSONText, UTCDateTime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

ACCOUNT_TYPES = ("PER", "ORG", "APP")
ACCOUNT_STATUSES = ("pending", "active", "suspended", "closed")
CREDENTIAL_KINDS = ("app_password", "password", "certificate", "otp")
QUEUE_STATES = ("queued", "inflight", "deferred", "sent", "bounced")

accounts = Table(
    "accounts",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("address", String(320), nullable=False, unique=True),
    Column("type", String(3), nullable=False),
    Column("display_name", String(256), nullable=False, default=""),
    Column("given_name", String(128), nullable=False, default=""),
    Column("surname", String(128), nullable=False, default=""),
    Column("idnat", String(64), nullable=True),
    Column("rpps", String(32), nullable=True, index=True),
    Column("adeli", String(32), nullable=True, index=True),
    Column("profession_code", String(32), nullable=True),
    Column("specialty_code", String(32), nullable=True),
    Column("structure_id", String(64), nullable=True),
    Column("structure_name", String(256), nullable=True),
    Column("status", String(16), nullable=False, default="pending", index=True),
    Column("is_admin", Boolean, nullable=False, default=False),
    Column("mdn_policy", String(16), nullable=False, default="always"),
    Column("settings", JSONText, nullable=False, default=dict),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    CheckConstraint("type IN ('PER','ORG','APP')", name="type"),
    CheckConstraint("status IN ('pending','active','suspended','closed')", name="status"),
    CheckConstraint("address = lower(address)", name="address_lower"),
)

credentials = Table(
    "credentials",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column(
        "account_id",
        BigId,
        ForeignKey("accounts.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("kind", String(16), nullable=False),
    Column("label", String(128), nullable=False, default=""),
    Column("secret_hash", Text, nullable=True),
    Column("cert_fingerprint", String(128), nullable=True, index=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_used_at", UTCDateTime, nullable=True),
    Column("revoked_at", UTCDateTime, nullable=True),
    CheckConstraint("kind IN ('app_password','password','certificate','otp')", name="kind"),
)

delegations = Table(
    "delegations",
    metadata,
    Column(
        "owner_account_id", BigId, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False
    ),
    Column(
        "delegate_account_id",
        BigId,
        ForeignKey("accounts.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("rights", String(32), nullable=False, default="lrswipkxtecda"),  # RFC 4314 §2.1
    Column("can_send_as", Boolean, nullable=False, default=False),
    Column("created_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("owner_account_id", "delegate_account_id"),
)

folders = Table(
    "folders",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("account_id", BigId, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(1024), nullable=False),
    Column("special_use", String(32), nullable=True),  # RFC 6154
    Column("uidvalidity", BigInteger, nullable=False),
    Column("uidnext", BigInteger, nullable=False, default=1),
    Column("highestmodseq", BigInteger, nullable=False, default=1),  # RFC 7162 §3.1.1
    Column("subscribed", Boolean, nullable=False, default=True),
    Column("created_at", UTCDateTime, nullable=False),
    # RFC 3501 §2.3.2 \Recent: the highest UID some session was already told of; claimed
    # atomically at SELECT so that it survives restarts and is shared by every node.
    Column("recent_uid", BigInteger, nullable=False, default=0, server_default="0"),
    UniqueConstraint("account_id", "name"),
    CheckConstraint("highestmodseq >= 1", name="modseq_positive"),
    CheckConstraint("uidnext >= 1", name="uidnext_positive"),
)

# RFC 3501 §6.3.6 / RFC 5258 §3.1: a subscription outlives its mailbox. Names of deleted
# folders that were subscribed stay here until UNSUBSCRIBE or until the name is re-created;
# LIST (SUBSCRIBED) shows them as \NonExistent.
lost_subscriptions = Table(
    "lost_subscriptions",
    metadata,
    Column("account_id", BigId, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(1024), nullable=False),
    PrimaryKeyConstraint("account_id", "name"),
)

# RFC 5464 METADATA: server (folder_id NULL) and mailbox annotations. ``account_id`` is the
# user for /private entries and the mailbox owner for /shared ones; values are sealed
# (storage/annotations.py), the entry name is kept in clear.
annotation_entries = Table(
    "annotations",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("account_id", BigId, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("folder_id", BigId, ForeignKey("folders.id", ondelete="CASCADE"), nullable=True),
    Column("name", String(1024), nullable=False),
    Column("key_id", String(64), nullable=False),
    Column("value", LargeBinary, nullable=False),
    Index("ix_annotations_account_folder", "account_id", "folder_id"),
)

folder_acl = Table(
    "folder_acl",
    metadata,
    Column("folder_id", BigId, ForeignKey("folders.id", ondelete="CASCADE"), nullable=False),
    Column("identifier", String(320), nullable=False),
    Column("rights", String(32), nullable=False),  # RFC 4314 §2.1 letters
    PrimaryKeyConstraint("folder_id", "identifier"),
)

blobs = Table(
    "blobs",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("content_sha256", String(64), nullable=False, unique=True),
    Column("size", BigInteger, nullable=False),
    Column("segment_size", Integer, nullable=False),
    Column("segment_count", Integer, nullable=False),
    Column("key_id", String(64), nullable=False, index=True),
    Column("wrapped_key", LargeBinary, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("purged_at", UTCDateTime, nullable=True),
)

blob_segments = Table(
    "blob_segments",
    metadata,
    Column("blob_id", BigId, ForeignKey("blobs.id", ondelete="CASCADE"), nullable=False),
    Column("idx", Integer, nullable=False),
    Column("data", LargeBinary, nullable=False),
    PrimaryKeyConstraint("blob_id", "idx"),
)

messages = Table(
    "messages",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("blob_id", BigId, ForeignKey("blobs.id"), nullable=True, index=True),
    Column("message_id_header", String(998), nullable=True, index=True),
    Column("content_sha256", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("header_size", Integer, nullable=False),
    Column("internal_date", UTCDateTime, nullable=False),
    # Retention counts from here with the current [storage] body_retention_days.
    Column("received_at", UTCDateTime, nullable=False, index=True),
    Column("expires_at", UTCDateTime, nullable=True, index=True),
    Column("purged_at", UTCDateTime, nullable=True),
    # The Date field's instant (mail.views.date_instant), NULL when missing or unreadable:
    # the webmail's list and SORT DATE order by it (RFC 5256 §2.2), falling back on the
    # INTERNALDATE. A time names no one, and the arrival time beside it is in clear too.
    Column("sent_at", UTCDateTime, nullable=True),
    # What the headers say (IMAP views with file names, decoded Subject/From/To/Cc, sent
    # date) names patients: stored only sealed under the body's data key (storage.metadata).
    Column("sealed_view", LargeBinary, nullable=True),
    Column("sealed_fields", LargeBinary, nullable=True),
)

folder_messages = Table(
    "folder_messages",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("folder_id", BigId, ForeignKey("folders.id", ondelete="CASCADE"), nullable=False),
    Column("message_id", BigId, ForeignKey("messages.id"), nullable=False, index=True),
    Column("uid", BigInteger, nullable=False),
    Column("modseq", BigInteger, nullable=False),
    Column("flags", Text, nullable=False, default=""),
    Column("internal_date", UTCDateTime, nullable=False),
    Column("expunged_modseq", BigInteger, nullable=True),  # RFC 7162 §3.2.5 VANISHED
    # RFC 8514 SAVEDATE: set by the database on every insert (delivery, APPEND, COPY/MOVE).
    Column("saved_at", UTCDateTime, nullable=True, server_default=func.now()),
    UniqueConstraint("folder_id", "uid"),
    Index("ix_folder_messages_folder_id_modseq", "folder_id", "modseq"),
)

queue = Table(
    "queue",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("message_id", BigId, ForeignKey("messages.id"), nullable=False, index=True),
    Column("sender", String(320), nullable=False),
    Column("recipient", String(320), nullable=False),
    Column("orcpt", String(500), nullable=True),  # RFC 3461 §4.2
    Column("notify", String(64), nullable=True),  # RFC 3461 §4.1
    Column("ret", String(8), nullable=True),  # RFC 3461 §4.3
    Column("envid", String(100), nullable=True),  # RFC 3461 §4.4
    Column("domain", String(255), nullable=False),
    Column("state", String(16), nullable=False, default="queued"),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("claimed_by", String(128), nullable=True),
    Column("claimed_until", UTCDateTime, nullable=True),
    Column("last_reply", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("delay_notified", Boolean, nullable=False, default=False),
    CheckConstraint("state IN ('queued','inflight','deferred','sent','bounced')", name="state"),
    Index("ix_queue_state_next_attempt_at", "state", "next_attempt_at"),
    Index("ix_queue_domain_state", "domain", "state"),
)

proofs = Table(
    "proofs",
    metadata,
    Column("seq", BigId, primary_key=True, autoincrement=False),
    Column("kind", String(32), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("message_ref", String(998), nullable=True, index=True),
    Column("content_sha256", String(64), nullable=True),
    Column("actor", String(320), nullable=True),
    Column("details", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

proof_checkpoints = Table(
    "proof_checkpoints",
    metadata,
    Column("seq", BigId, primary_key=True, autoincrement=False),
    Column("hash", String(64), nullable=False),
    Column("signature", LargeBinary, nullable=False),
    Column("key_id", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("root", String(64), nullable=True),  # Merkle root (hex) at tree size seq
    Column("note", Text, nullable=True),  # the C2SP signed checkpoint note
)

# Every complete subtree of the Merkle tree over the proofs (storage/merkle.py): level 0
# holds the leaf hashes, (level, idx) the root of leaves idx*2**level .. (idx+1)*2**level-1.
proof_tree = Table(
    "proof_tree",
    metadata,
    Column("level", Integer, primary_key=True, autoincrement=False),
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", LargeBinary(32), nullable=False),
)

traces = Table(
    "traces",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("created_at", UTCDateTime, nullable=False, index=True),
    Column("session_id", String(64), nullable=False, index=True),
    Column("service", String(16), nullable=False),
    Column("event", String(64), nullable=False),
    Column("detail", JSONText, nullable=False),
)

REGISTRATION_STATUSES = ("unconfirmed", "pending", "approved", "rejected")

# A professional's sign-up request, from the form to the administrator's decision. The
# password is stored only as an argon2id hash (moved to the mailbox's credentials on
# approval); the confirmation token only as its SHA-256 (it is 256 random bits).
registrations = Table(
    "registrations",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("status", String(16), nullable=False, default="unconfirmed", index=True),
    Column("profession_type", String(64), nullable=False),
    Column("rpps", String(11), nullable=True),
    Column("adeli", String(9), nullable=True),
    Column("surname", String(128), nullable=False),
    Column("given_name", String(128), nullable=False),
    Column("company", String(256), nullable=False, default=""),
    Column("liberal", Boolean, nullable=False, default=False),
    Column("profession", String(128), nullable=False),
    Column("address1", String(256), nullable=False),
    Column("address2", String(256), nullable=False, default=""),
    Column("postal_code", String(5), nullable=False),
    Column("city", String(128), nullable=False),
    Column("region", String(64), nullable=False),
    Column("department", String(3), nullable=False),
    Column("phone1", String(32), nullable=False),
    Column("phone2", String(32), nullable=False, default=""),
    Column("password_hash", Text, nullable=True),
    Column("token_hash", String(64), nullable=True, unique=True),
    Column("token_expires_at", UTCDateTime, nullable=True),
    Column("token_sent_at", UTCDateTime, nullable=True),
    Column("token_sends", Integer, nullable=False, default=0),
    Column("created_at", UTCDateTime, nullable=False),
    Column("confirmed_at", UTCDateTime, nullable=True),
    Column("decided_at", UTCDateTime, nullable=True),
    Column("decided_by", String(320), nullable=True),
    Column("reason", Text, nullable=True),
    Column("address", String(320), nullable=True),
    Column("account_id", BigId, ForeignKey("accounts.id", ondelete="SET NULL"), nullable=True),
    CheckConstraint(
        "status IN ('unconfirmed','pending','approved','rejected')", name="status"
    ),
    CheckConstraint("email = lower(email)", name="email_lower"),
)

# RFC 5230 vacation / RFC 3834 automatic replies: one setting per account, and which
# senders were answered in which period (a sender is kept as the SHA-256 of its address).
vacations = Table(
    "vacations",
    metadata,
    Column("account_id", BigId, ForeignKey("accounts.id", ondelete="CASCADE"),
           primary_key=True),
    Column("enabled", Boolean, nullable=False, default=False),
    Column("starts_at", UTCDateTime, nullable=True),
    Column("ends_at", UTCDateTime, nullable=True),
    Column("subject", String(998), nullable=False, default=""),
    Column("body", Text, nullable=False, default=""),
    Column("contact", String(320), nullable=False, default=""),
    Column("days", Integer, nullable=False, default=7),
    Column("period", Integer, nullable=False, default=1),
    Column("updated_at", UTCDateTime, nullable=False),
)

vacation_replies = Table(
    "vacation_replies",
    metadata,
    Column("account_id", BigId, ForeignKey("accounts.id", ondelete="CASCADE"),
           primary_key=True),
    Column("sender_sha256", String(64), primary_key=True),
    Column("period", Integer, nullable=False),
    Column("replied_at", UTCDateTime, nullable=False),
)

meta = Table(
    "meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)
