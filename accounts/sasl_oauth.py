"""The client messages of SASL OAUTHBEARER (RFC 7628) and XOAUTH2 (Google's older form),
parsed once for IMAP and SMTP alike.

OAUTHBEARER (RFC 7628 §3.1)::

    gs2-header %x01 *(key "=" value %x01) %x01        e.g. n,a=user@example.com,^Aauth=Bearer T^A^A

XOAUTH2::

    "user=" user %x01 "auth=Bearer " token %x01 %x01

After a failure the server sends a JSON challenge (RFC 7628 §3.2.2) and the client answers
with a dummy message — ``%x01`` for OAUTHBEARER, an empty one for XOAUTH2 — before the
server's final failure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_KEY = re.compile(r"[A-Za-z]+")
_TOKEN_CHARS = re.compile(r"[A-Za-z0-9\-._~+/]+=*")  # RFC 6750 §2.1 b64token


class BadOAuthMessage(ValueError):
    """A message that is not OAUTHBEARER/XOAUTH2; the text says what is wrong (no token)."""


@dataclass(frozen=True)
class OAuthMessage:
    login: str
    token: str = field(repr=False)


def _bearer(value: str) -> str:
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not _TOKEN_CHARS.fullmatch(token):
        raise BadOAuthMessage("auth must be \"Bearer <token>\" (RFC 6750 §2.1)")
    return token


def _kvpairs(text: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in text.split("\x01"):
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep or not _KEY.fullmatch(key):
            raise BadOAuthMessage("malformed key=value pair")
        pairs[key] = value
    return pairs


def _saslname(value: str) -> str:
    """RFC 5801 §4 saslname: ``,`` and ``=`` travel as ``=2C`` and ``=3D``."""
    if re.search(r"=(?!2C|3D)", value):
        raise BadOAuthMessage("malformed authorization identity")
    return value.replace("=2C", ",").replace("=3D", "=")


def parse_oauthbearer(data: bytes) -> OAuthMessage:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadOAuthMessage("OAUTHBEARER message must be UTF-8") from None
    if not text.endswith("\x01\x01") or "\x01" not in text:
        raise BadOAuthMessage("OAUTHBEARER message must end with two ^A")
    gs2, _, rest = text.partition("\x01")
    parts = gs2.split(",")
    if len(parts) != 3 or parts[2] != "":
        raise BadOAuthMessage("malformed GS2 header")
    flag, authzid = parts[0], parts[1]
    if flag.startswith("p="):
        raise BadOAuthMessage("channel binding is not supported")
    if flag not in ("n", "y"):
        raise BadOAuthMessage("malformed GS2 header")
    login = ""
    if authzid:
        if not authzid.startswith("a="):
            raise BadOAuthMessage("malformed authorization identity")
        login = _saslname(authzid[2:])
    pairs = _kvpairs(rest)
    if "auth" not in pairs:
        raise BadOAuthMessage("no auth=Bearer value")
    return OAuthMessage(login=login, token=_bearer(pairs["auth"]))


def parse_xoauth2(data: bytes) -> OAuthMessage:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadOAuthMessage("XOAUTH2 message must be UTF-8") from None
    pairs = _kvpairs(text)
    if "user" not in pairs or "auth" not in pairs:
        raise BadOAuthMessage("XOAUTH2 expects user=...^Aauth=Bearer ...^A^A")
    return OAuthMessage(login=pairs["user"], token=_bearer(pairs["auth"]))


PARSERS = {"OAUTHBEARER": parse_oauthbearer, "XOAUTH2": parse_xoauth2}
