"""One-time codes for the portal's second factor: 6 digits to the usual e-mail address.

A code is valid 10 minutes, once, for 5 tries; a new one may be asked at most every
minute. Only an HMAC of the code under a per-challenge random key is kept (a session store
read by someone must not give the code away), and the comparison is constant time. The
challenge is a plain value kept in the server-side session of the login in progress.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

CODE_DIGITS = 6
LIFETIME = timedelta(minutes=10)
MAX_TRIES = 5
RESEND_INTERVAL = timedelta(minutes=1)


@dataclass(frozen=True)
class OtpChallenge:
    account_id: int
    key: bytes
    code_mac: bytes
    expires_at: datetime
    sent_at: datetime
    tries: int = 0
    used: bool = False


def _mac(key: bytes, code: str) -> bytes:
    return hmac.new(key, code.encode("ascii", "replace"), hashlib.sha256).digest()


def new_challenge(account_id: int, now: datetime) -> tuple[OtpChallenge, str]:
    """A fresh challenge and its code (to send, never to store)."""
    code = f"{secrets.randbelow(10 ** CODE_DIGITS):0{CODE_DIGITS}d}"
    key = secrets.token_bytes(32)
    return OtpChallenge(account_id, key, _mac(key, code), now + LIFETIME, now), code


def may_resend(challenge: OtpChallenge, now: datetime) -> bool:
    return now - challenge.sent_at >= RESEND_INTERVAL


def verify(challenge: OtpChallenge, code: str, now: datetime) -> tuple[OtpChallenge, str]:
    """(the challenge after this try, outcome): "ok", "wrong", "expired", "exhausted"
    (the fifth wrong try or later), "used"."""
    if challenge.used:
        return challenge, "used"
    if now >= challenge.expires_at:
        return challenge, "expired"
    if challenge.tries >= MAX_TRIES:
        return challenge, "exhausted"
    code = code.strip().replace(" ", "")
    if hmac.compare_digest(_mac(challenge.key, code), challenge.code_mac):
        return replace(challenge, used=True), "ok"
    tried = replace(challenge, tries=challenge.tries + 1)
    return tried, "exhausted" if tried.tries >= MAX_TRIES else "wrong"
