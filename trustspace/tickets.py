"""TLS session ticket keys shared by the processes of one gateway.

Why: a client that reconnects (Thunderbird's five connections, a mobile client coming back,
a hospital MTA's next burst) should resume its TLS session rather than pay a full
handshake. OpenSSL issues TLS 1.3 session tickets by default, encrypted under keys drawn at
random for each ``SSL_CTX``: with several worker processes (``[gateway] workers``) a ticket
issued by one worker is refused by the others, so a client resumes only when the kernel
happens to send it to the same worker (one time in N). The supervisor therefore draws one
set of keys at start and hands it to its workers through an inherited pipe (never a file,
never the environment); every server context of the process then uses it.

Python's :mod:`ssl` has no call for this; OpenSSL's ``SSL_CTX_set_tlsext_ticket_keys`` is
a macro over ``SSL_CTX_ctrl``, reached here through :mod:`ctypes` on the very ``SSL_CTX``
of the context, after two checks that we hold the right one (the library's version is the
one :mod:`ssl` reports, and ``SSL_CTX_get_options`` there equals ``ctx.options``). When a
check fails the context keeps its own keys: resumption then works per process, nothing
else changes. The keys live as long as the supervisor (a restart draws new ones).
"""

from __future__ import annotations

import ctypes
import logging
import ssl
from functools import cache
from typing import Any

log = logging.getLogger("mssante.tls")

KEY_LENGTH = 80
"""OpenSSL's ticket key block: 16 octets of key name, 32 of HMAC key, 32 of AES key."""

_SET_TICKET_KEYS = 59  # SSL_CTRL_SET_TLSEXT_TICKET_KEYS
_keys: bytes | None = None


def use_ticket_keys(keys: bytes) -> None:
    """Every server context made from now on in this process issues and accepts tickets
    under ``keys`` (:data:`KEY_LENGTH` random octets shared by the gateway's processes)."""
    global _keys
    if len(keys) != KEY_LENGTH:
        raise ValueError(f"ticket keys must be {KEY_LENGTH} octets, not {len(keys)}")
    _keys = keys


@cache
def _libssl() -> Any:
    if ssl.OPENSSL_VERSION_INFO[0] != 3:
        return None
    try:
        lib = ctypes.CDLL("libssl.so.3")
        lib.OpenSSL_version_num.restype = ctypes.c_ulong
        if lib.OpenSSL_version_num() != ssl.OPENSSL_VERSION_NUMBER:
            return None
        lib.SSL_CTX_get_options.restype = ctypes.c_uint64
        lib.SSL_CTX_get_options.argtypes = [ctypes.c_void_p]
        lib.SSL_CTX_ctrl.restype = ctypes.c_long
        lib.SSL_CTX_ctrl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long,
                                     ctypes.c_void_p]
    except (OSError, AttributeError):
        return None
    return lib


def apply_ticket_keys(ctx: ssl.SSLContext) -> bool:
    """Gives ``ctx`` the shared keys when there are some; whether it did."""
    if _keys is None:
        return False
    lib = _libssl()
    if lib is None:
        log.warning("tls_ticket_keys_unshared", extra={"fields": {
            "reason": f"not the expected OpenSSL ({ssl.OPENSSL_VERSION})"}})
        return False
    # CPython's SSLContext object: its SSL_CTX pointer comes right after the object header.
    pointer = ctypes.c_void_p.from_address(id(ctx) + object.__basicsize__).value
    if not pointer or lib.SSL_CTX_get_options(pointer) != int(ctx.options):
        log.warning("tls_ticket_keys_unshared", extra={"fields": {
            "reason": "unexpected SSLContext layout"}})
        return False
    block = ctypes.create_string_buffer(_keys, KEY_LENGTH)
    return bool(lib.SSL_CTX_ctrl(pointer, _SET_TICKET_KEYS, KEY_LENGTH, block) == 1)
