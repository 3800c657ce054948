"""What the SMTP front-end needs from the running gateway, and nothing more.

The handlers are given an object with these attributes (the composition root's
``gateway.runtime.Gateway`` has them); naming them here keeps ``smtp/`` from importing
``gateway/`` (DESIGN.md §2) and says at a glance which parts SMTP policy depends on.
"""

from __future__ import annotations

from typing import Protocol

from accounts.authenticator import Authenticator
from config import Settings
from directory_ldap import Directory
from mail.pipeline import Pipeline
from storage.database import Database
from trustspace.crl import CrlStore
from trustspace.refresh import TrustSpaceManager


class SmtpGateway(Protocol):
    """The running gateway as SMTP sees it; a part is None until the gateway has started."""

    settings: Settings
    db: Database | None
    trust: TrustSpaceManager | None
    revocation: CrlStore | None
    pipeline: Pipeline | None
    authenticator: Authenticator | None
    directory: Directory | None
