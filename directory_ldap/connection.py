"""python-ldap connections used from asyncio without blocking the event loop.

python-ldap calls block and its connection objects must not be used from two threads at
once, so every call runs in a dedicated thread pool whose workers each own one connection
(thread-local), opened on first use and reopened after the server went away (a managed
slapd restart), so a caller only sees :class:`DirectoryUnavailable` if the server stays down.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import ldap
import ldap.sasl

from directory_ldap.errors import DirectoryUnavailable

T = TypeVar("T")
LdapObject = Any  # ldap.ldapobject.LDAPObject has no usable type stubs


@dataclass(frozen=True)
class Credentials:
    """How the gateway's service identity binds.

    ``sasl_external`` over ldapi (managed slapd: peer credentials map to the service DN, no
    secret at all) or over LDAPS with ``client_cert``/``client_key``; otherwise a simple bind
    with ``bind_dn``/``password``, which needs TLS (``ldaps://`` or StartTLS).
    """

    url: str
    bind_dn: str = ""
    password: str = ""
    sasl_external: bool = False
    ca_file: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    start_tls: bool = False
    timeout: float = 5.0


def open_connection(creds: Credentials) -> LdapObject:
    """A bound connection (blocking: call it from a worker thread only)."""
    conn = ldap.initialize(creds.url, bytes_mode=False)
    conn.set_option(ldap.OPT_PROTOCOL_VERSION, 3)
    conn.set_option(ldap.OPT_REFERRALS, 0)
    conn.set_option(ldap.OPT_NETWORK_TIMEOUT, creds.timeout)
    conn.set_option(ldap.OPT_TIMEOUT, creds.timeout * 6)
    if creds.ca_file is not None:
        conn.set_option(ldap.OPT_X_TLS_CACERTFILE, str(creds.ca_file))
    if creds.client_cert is not None and creds.client_key is not None:
        conn.set_option(ldap.OPT_X_TLS_CERTFILE, str(creds.client_cert))
        conn.set_option(ldap.OPT_X_TLS_KEYFILE, str(creds.client_key))
    conn.set_option(ldap.OPT_X_TLS_REQUIRE_CERT, ldap.OPT_X_TLS_DEMAND)
    conn.set_option(ldap.OPT_X_TLS_PROTOCOL_MIN, 0x303)  # TLS 1.2 minimum
    conn.set_option(ldap.OPT_X_TLS_NEWCTX, 0)
    if creds.start_tls:
        conn.start_tls_s()  # RFC 4511 §4.14
    if creds.sasl_external:
        conn.sasl_interactive_bind_s("", ldap.sasl.external())  # RFC 4422 Appendix A
    else:
        conn.simple_bind_s(creds.bind_dn, creds.password)
    return conn


class ConnectionPool:
    """Runs blocking python-ldap functions on worker threads, one connection per thread."""

    def __init__(self, creds: Credentials, workers: int = 4) -> None:
        self.creds = creds
        self.workers = workers
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="ldap")
        self._local = threading.local()
        self._all: list[LdapObject] = []
        self._lock = threading.Lock()

    def _conn(self) -> LdapObject:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = open_connection(self.creds)
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            with self._lock:
                if conn in self._all:
                    self._all.remove(conn)
            try:
                conn.unbind_s()
            except ldap.LDAPError:
                pass

    def _call(self, fn: Callable[[LdapObject], T]) -> T:
        for attempt in (1, 2):
            try:
                return fn(self._conn())
            except (ldap.SERVER_DOWN, ldap.CONNECT_ERROR, ldap.UNAVAILABLE, ldap.TIMEOUT) as exc:
                self._drop()
                if attempt == 2:
                    raise DirectoryUnavailable(
                        f"LDAP server {self.creds.url} does not answer ({type(exc).__name__}); "
                        "check that slapd runs or that [directory] url is right"
                    ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def run(self, fn: Callable[[LdapObject], T]) -> T:
        """``fn(conn)`` on a worker thread; reconnects once if the server went away."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._call, fn)

    def close(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            try:
                conn.unbind_s()
            except ldap.LDAPError:
                pass
        self._executor.shutdown(wait=False, cancel_futures=True)
