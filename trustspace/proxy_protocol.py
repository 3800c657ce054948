"""The PROXY protocol, version 2, from trusted load balancers (HAProxy ``send-proxy-v2``).

Behind a TCP load balancer every connection comes from the balancer's address, so the
per-address limits, the traces and the proofs would all name the balancer. With
``[gateway] proxy_protocol_from`` set, a connection from one of those addresses must begin
with a PROXY v2 header (the binary format of the HAProxy specification, section 2.2),
which gives the client's real address; the mail protocol (and TLS, on the implicit-TLS
ports) starts after it. A connection from any other address is served as a direct client
and whatever it sends is never read as a header, so nobody else can claim an address. A
listed balancer that sends no valid header within the time limit, or a malformed one, is
disconnected: a listener behind a balancer never falls back to the balancer's address.

Implementation: :class:`ProxyGate` is the first protocol of the connection. Once the
header is read it hands the socket to the real protocol with a transport whose
``peername`` is the client's address, and passes on any bytes that came after the header.
The header is bounded (:data:`MAX_HEADER`) before anything is allocated for it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

log = logging.getLogger("mssante.proxy")

SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
MAX_HEADER = 16 + 1024
"""Largest header accepted: the fixed part, addresses and HAProxy's usual TLVs."""

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = tuple[str, int]


class ProxyHeaderError(ValueError):
    """The header is malformed, of an unknown version or too long."""


@dataclass(frozen=True)
class ProxyHeader:
    """What the balancer said: the client's address, or None for a LOCAL connection (the
    balancer's own health check)."""

    source: Address | None
    length: int
    """Octets of the header, to skip before the mail protocol's bytes."""


def parse_header(data: bytes | bytearray) -> ProxyHeader | None:
    """The header at the start of ``data``; None while incomplete."""
    if len(data) < 16:
        if not SIGNATURE.startswith(bytes(data[:12])):
            raise ProxyHeaderError("not a PROXY protocol v2 header")
        return None
    if data[:12] != SIGNATURE:
        raise ProxyHeaderError("not a PROXY protocol v2 header")
    version, command = data[12] >> 4, data[12] & 0x0F
    if version != 2 or command not in (0, 1):
        raise ProxyHeaderError(f"PROXY version {version} command {command} not supported")
    family = data[13]
    (length,) = struct.unpack_from("!H", data, 14)
    if 16 + length > MAX_HEADER:
        raise ProxyHeaderError(f"PROXY header of {16 + length} octets is too long")
    if len(data) < 16 + length:
        return None
    body = bytes(data[16:16 + length])
    if command == 0:  # LOCAL: the balancer itself; its own address stands
        return ProxyHeader(None, 16 + length)
    if family == 0x11:  # TCP over IPv4
        if length < 12:
            raise ProxyHeaderError("PROXY IPv4 address block too short")
        source = socket.inet_ntop(socket.AF_INET, body[0:4])
        (port,) = struct.unpack_from("!H", body, 8)
    elif family == 0x21:  # TCP over IPv6
        if length < 36:
            raise ProxyHeaderError("PROXY IPv6 address block too short")
        source = socket.inet_ntop(socket.AF_INET6, body[0:16])
        (port,) = struct.unpack_from("!H", body, 32)
    elif family == 0x00:  # UNSPEC with PROXY: no address to take
        return ProxyHeader(None, 16 + length)
    else:
        raise ProxyHeaderError(f"PROXY address family {family:#04x} not supported")
    mapped = ipaddress.ip_address(source)
    if isinstance(mapped, ipaddress.IPv6Address) and mapped.ipv4_mapped is not None:
        source = str(mapped.ipv4_mapped)
    return ProxyHeader((source, port), 16 + length)


def build_header(source: Address, destination: Address) -> bytes:
    """A PROXY v2 header for TCP from ``source`` to ``destination`` (tests, tools)."""
    src, dst = ipaddress.ip_address(source[0]), ipaddress.ip_address(destination[0])
    if src.version != dst.version:
        raise ValueError("source and destination must be of one address family")
    family = 0x11 if src.version == 4 else 0x21
    body = src.packed + dst.packed + struct.pack("!HH", source[1], destination[1])
    return SIGNATURE + bytes([0x21, family]) + struct.pack("!H", len(body)) + body


def parse_networks(values: Sequence[str]) -> list[Network]:
    """``[gateway] proxy_protocol_from`` as networks (the loader has checked each value)."""
    return [ipaddress.ip_network(value, strict=False) for value in values]


def trusted(networks: Sequence[Network], peer: Any) -> bool:
    """Whether ``peer`` (a ``peername``) is one of the listed balancers."""
    if not networks or not isinstance(peer, tuple):
        return False
    try:
        address = ipaddress.ip_address(peer[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


class ProxiedTransport(asyncio.Transport):
    """The connection's transport, but ``peername`` is the client's address the balancer
    gave. Everything else goes to the socket's own transport."""

    def __init__(self, real: asyncio.Transport, peername: Address) -> None:
        super().__init__()
        self._real = real
        self._peername = peername

    def __getattr__(self, name: str) -> Any:
        # asyncio's TLS layer calls private methods of the transport (``_force_close``).
        return getattr(self._real, name)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "peername":
            return self._peername
        return self._real.get_extra_info(name, default)

    def is_closing(self) -> bool:
        return self._real.is_closing()

    def close(self) -> None:
        self._real.close()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._real.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._real.get_protocol()

    def is_reading(self) -> bool:
        return self._real.is_reading()

    def pause_reading(self) -> None:
        self._real.pause_reading()

    def resume_reading(self) -> None:
        self._real.resume_reading()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._real.set_write_buffer_limits(high, low)

    def get_write_buffer_size(self) -> int:
        return self._real.get_write_buffer_size()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._real.get_write_buffer_limits()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._real.write(data)

    def writelines(self, list_of_data: Any) -> None:
        self._real.writelines(list_of_data)

    def write_eof(self) -> None:
        self._real.write_eof()

    def can_write_eof(self) -> bool:
        return self._real.can_write_eof()

    def abort(self) -> None:
        self._real.abort()


def _deliver(protocol: asyncio.BaseProtocol, data: bytes) -> None:
    """Passes bytes that followed the header to whatever protocol now reads the socket
    (the session, or the TLS layer it started). Duck-typed: uvloop's TLS protocol (a
    compiled class, :mod:`trustspace.tls_layer`) is a buffered protocol without deriving
    from ``asyncio.BufferedProtocol``; bytes it was not given were lost, and with them the
    TLS ClientHello that came in the PROXY header's segment."""
    if hasattr(protocol, "get_buffer") and hasattr(protocol, "buffer_updated"):
        view = memoryview(data)
        while view:
            buffer = memoryview(protocol.get_buffer(len(view)))
            n = min(len(buffer), len(view))
            buffer[:n] = view[:n]
            protocol.buffer_updated(n)
            view = view[n:]
    elif hasattr(protocol, "data_received"):
        protocol.data_received(data)


class ProxyGate(asyncio.Protocol):
    """First protocol of a connection on a listener behind balancers (see module doc)."""

    def __init__(self, inner: Callable[[], asyncio.BaseProtocol],
                 balancers: Sequence[Network], timeout: float) -> None:
        self._inner = inner
        self._balancers = balancers
        self._timeout = timeout
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        real = cast(asyncio.Transport, transport)  # uvloop's is one without the base class
        peer = real.get_extra_info("peername")
        if not isinstance(peer, tuple):  # reset before we looked: nobody to serve
            real.abort()
            return
        if not trusted(self._balancers, peer):
            self._hand_over(real, real)  # a direct client: nothing to read first
            return
        self._transport = real
        self._timer = asyncio.get_running_loop().call_later(self._timeout, self._expired)

    def data_received(self, data: bytes) -> None:
        transport = self._transport
        if transport is None:
            return
        if len(self._buffer) + len(data) > MAX_HEADER:
            data = data[:MAX_HEADER + 1 - len(self._buffer)]
        self._buffer += data
        try:
            header = parse_header(self._buffer)
            if header is None and len(self._buffer) > MAX_HEADER:
                raise ProxyHeaderError("PROXY header too long")
        except ProxyHeaderError as exc:
            self._refuse(str(exc))
            return
        if header is None:
            return
        rest = bytes(self._buffer[header.length:])
        self._buffer = bytearray()
        self._cancel_timer()
        self._transport = None
        seen: asyncio.Transport = transport
        if header.source is not None:
            seen = ProxiedTransport(transport, header.source)
        self._hand_over(transport, seen)
        if rest and not transport.is_closing():
            _deliver(transport.get_protocol(), rest)

    def _hand_over(self, real: asyncio.Transport, seen: asyncio.Transport) -> None:
        protocol = self._inner()
        real.set_protocol(protocol)
        protocol.connection_made(seen)

    def eof_received(self) -> bool | None:
        if self._transport is not None:
            self._refuse("connection closed before the PROXY header")
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        self._transport = None

    def _expired(self) -> None:
        self._refuse(f"no PROXY header within {self._timeout:g} s")

    def _refuse(self, reason: str) -> None:
        transport, self._transport = self._transport, None
        self._cancel_timer()
        if transport is not None:
            peer = transport.get_extra_info("peername")
            log.warning("proxy_header_refused", extra={"fields": {
                "balancer": peer[0] if isinstance(peer, tuple) else str(peer),
                "reason": reason}})
            transport.abort()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def gated(factory: Callable[[], asyncio.BaseProtocol], balancers: Sequence[Network],
          timeout: float) -> Callable[[], asyncio.BaseProtocol]:
    """``factory`` itself when no balancer is listed, else one that reads the header first."""
    if not balancers:
        return factory
    return lambda: ProxyGate(factory, balancers, timeout)
