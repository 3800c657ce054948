"""Keeping the trust space current: local file, HTTPS download, last good copy on disk.

A refresh either replaces the whole list with a valid one or changes nothing: an empty,
truncated or foreign document, an unreachable or untrusted server, all leave the previous
list in force and are logged as one ``event=trustspace_refresh_refused`` line. The last
good document is kept on disk so a restart while the publisher is down still has a list.
"""

from __future__ import annotations

import asyncio
import http.client
import logging
import os
import ssl
import time
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from urllib.parse import urlsplit

from config import Settings
from trustspace.whitelist import TrustSpace, WhitelistError, build_whitelist_xml, parse_whitelist

log = logging.getLogger("mssante.trustspace")

LAST_GOOD_NAME = "trustspace.last-good.xml"


@dataclass(frozen=True)
class RefreshResult:
    """The outcome of one refresh, for logs, the CLI and the health page."""

    ok: bool
    source: str
    count: int
    reason: str = ""
    detail: str = ""
    changed: bool = False


def _kv(value: object) -> str:
    """A log value on one line, quoted when it has spaces (key=value log format)."""
    text = " ".join(str(value).split())
    return f'"{text}"' if (" " in text or not text) else text


# -- files -------------------------------------------------------------------------------------


def write_atomically(path: Path, data: bytes) -> None:
    """Writes ``data`` so that ``path`` is either the old or the new content, even on a crash.

    Temporary file in the same directory, fsync, rename, then fsync of the directory so
    the rename itself is durable.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def last_good_path(settings: Settings) -> Path:
    """Where the last valid whitelist document is kept."""
    return settings.data_dir / LAST_GOOD_NAME


def ensure_default_whitelist(settings: Settings) -> Path | None:
    """Embedded mode: writes a whitelist with the local domains when no file exists yet.

    Returns the path written, or None when nothing was needed (production mode, or a file
    is already there: an operator's list is never overwritten).
    """
    path = settings.trustspace_file
    if not settings.embedded or path.exists():
        return None
    document = build_whitelist_xml(settings.gateway.domains, operator=settings.hostname)
    write_atomically(path, document)
    log.info(
        "event=trustspace_default_written path=%s domains=%d",
        _kv(path), len(settings.gateway.domains),
    )
    return path


# -- HTTPS -------------------------------------------------------------------------------------


def client_ssl_context(cafiles: list[Path]) -> ssl.SSLContext:
    """A client context that trusts only ``cafiles`` and speaks TLS 1.2 or later.

    The publisher's certificate must chain to a configured anchor (the IGC-Santé chain in
    production), not to whatever the system store happens to hold.
    """
    if not cafiles:
        raise WhitelistError(
            "fetch",
            "no trust anchor is configured to verify the whitelist server "
            "(set trustspace.ca_file or tls.anchors)",
        )
    ctx = ssl.create_default_context(cafile=str(cafiles[0]))
    for extra in cafiles[1:]:
        ctx.load_verify_locations(cafile=str(extra))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def fetch_https(url: str, ctx: ssl.SSLContext, timeout: float, max_size: int) -> bytes:
    """Downloads ``url`` (blocking: run it in a thread). Raises WhitelistError on any failure.

    Only HTTPS, no redirects (a moved list is a configuration change an operator must see),
    status 200 only, body no larger than ``max_size``, and a short body against
    Content-Length is a truncation (http.client raises IncompleteRead).
    """
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise WhitelistError("fetch", f"the whitelist URL {url!r} is not an https:// URL")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    conn = http.client.HTTPSConnection(
        parts.hostname, parts.port or 443, context=ctx, timeout=timeout
    )
    try:
        conn.request("GET", path, headers={"Accept": "application/xml, text/xml"})
        resp = conn.getresponse()
        if resp.status != 200:
            raise WhitelistError(
                "fetch", f"the whitelist server answered HTTP {resp.status} {resp.reason}"
            )
        length = resp.getheader("Content-Length")
        if (length is not None and length.isascii() and length.isdigit()
                and int(length) > max_size):
            raise WhitelistError("too_large", f"the whitelist is larger than {max_size} octets")
        body = resp.read(max_size + 1)
        if len(body) > max_size:
            raise WhitelistError("too_large", f"the whitelist is larger than {max_size} octets")
        return body
    except http.client.IncompleteRead as exc:
        raise WhitelistError(
            "truncated", f"the download stopped after {len(exc.partial)} octets"
        ) from None
    except ssl.SSLCertVerificationError as exc:
        raise WhitelistError(
            "untrusted", f"the whitelist server certificate was refused: {exc.verify_message}"
        ) from None
    except (OSError, http.client.HTTPException) as exc:
        raise WhitelistError("fetch", f"cannot download the whitelist: {exc}") from None
    finally:
        conn.close()


# -- the manager -------------------------------------------------------------------------------


class TrustSpaceManager:
    """Holds the trust space in force and replaces it only with a valid newer one.

    Sources: the local file (``settings.trustspace_file``, watched by mtime) and the HTTPS
    URL (``settings.trustspace.url``, fetched every ``refresh_interval``). Every valid list
    adopted is also saved as the last good copy, used at start-up when neither answers.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._current: TrustSpace | None = None
        self._file_signature: tuple[int, int, int] | None = None
        self._saved_raw: bytes | None = None

    # -- state --
    @property
    def current(self) -> TrustSpace:
        """The trust space in force; raises if nothing was ever loaded."""
        if self._current is None:
            raise WhitelistError("empty", "no trust space has been loaded yet")
        return self._current

    @property
    def loaded(self) -> bool:
        return self._current is not None

    @property
    def last_good_file(self) -> Path:
        return last_good_path(self.settings)

    def _parse(self, data: bytes, source: str) -> TrustSpace:
        return parse_whitelist(
            data,
            source=source,
            local_domains=self.settings.gateway.domains,
            max_size=self.settings.trustspace.max_size,
        )

    def _refused(self, source: str, exc: WhitelistError) -> RefreshResult:
        keeping = self._current.source if self._current else "nothing"
        log.warning(
            "event=trustspace_refresh_refused source=%s reason=%s detail=%s keeping=%s",
            _kv(source), exc.reason, _kv(str(exc)), _kv(keeping),
        )
        count = self._current.count if self._current else 0
        return RefreshResult(False, source, count, exc.reason, str(exc))

    async def _adopt(self, space: TrustSpace) -> RefreshResult:
        changed = self._current is None or self._current.domains != space.domains
        self._current = space
        if space.raw != self._saved_raw:
            await asyncio.to_thread(write_atomically, self.last_good_file, space.raw)
            self._saved_raw = space.raw
        log.info(
            "event=trustspace_loaded source=%s domains=%d skipped=%d changed=%s",
            _kv(space.source), space.count, len(space.skipped), str(changed).lower(),
        )
        return RefreshResult(True, space.source, space.count, changed=changed)

    # -- sources --
    def _stat_file(self) -> tuple[int, int, int] | None:
        try:
            st = self.settings.trustspace_file.stat()
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    async def load_file(self, path: Path | None = None) -> RefreshResult:
        """Reads and adopts a whitelist file; on failure the list in force stays."""
        target = path or self.settings.trustspace_file
        source = str(target)
        try:
            data = await asyncio.to_thread(target.read_bytes)
        except OSError as exc:
            return self._refused(source, WhitelistError("fetch", f"cannot read: {exc.strerror}"))
        try:
            space = self._parse(data, source)
        except WhitelistError as exc:
            return self._refused(source, exc)
        return await self._adopt(space)

    async def fetch_url(self) -> RefreshResult:
        """Downloads and adopts the published whitelist; on failure the list in force stays."""
        ts = self.settings.trustspace
        source = ts.url
        try:
            anchors = (
                [self.settings.path(ts.ca_file, ts.ca_file)] if ts.ca_file
                else list(self.settings.tls_anchor_files)
            )
            ctx = await asyncio.to_thread(client_ssl_context, anchors)
            data = await asyncio.to_thread(fetch_https, ts.url, ctx, ts.fetch_timeout, ts.max_size)
            space = self._parse(data, source)
        except WhitelistError as exc:
            return self._refused(source, exc)
        except (OSError, ssl.SSLError) as exc:
            return self._refused(source, WhitelistError("fetch", f"bad trust anchors: {exc}"))
        return await self._adopt(space)

    async def check_file(self) -> RefreshResult | None:
        """Reloads the local file if it changed since last looked at; None if unchanged."""
        signature = await asyncio.to_thread(self._stat_file)
        if signature is None or signature == self._file_signature:
            return None
        self._file_signature = signature
        return await self.load_file()

    async def load_initial(self, *, offline: bool = False) -> RefreshResult:
        """Start-up: URL first (unless ``offline``), then the local file, then the last good copy.

        Raises WhitelistError when no source gives a valid list: the relay cannot decide
        anything without one, and starting with an empty list would refuse every peer.
        """
        tried: list[str] = []
        if self.settings.trustspace.url and not offline:
            result = await self.fetch_url()
            if result.ok:
                self._file_signature = await asyncio.to_thread(self._stat_file)
                return result
            tried.append(f"{result.source}: {result.detail}")
        self._file_signature = await asyncio.to_thread(self._stat_file)
        if self._file_signature is not None:
            result = await self.load_file()
            if result.ok:
                return result
            tried.append(f"{result.source}: {result.detail}")
        if self.last_good_file.exists():
            result = await self.load_file(self.last_good_file)
            if result.ok:
                return result
            tried.append(f"{result.source}: {result.detail}")
        if not tried:
            tried.append(f"{self.settings.trustspace_file}: the file does not exist")
        raise WhitelistError("empty", "no valid trust space could be loaded (" +
                             "; ".join(tried) + ")")

    async def refresh(self) -> RefreshResult:
        """Fetches now: the URL when configured, else the local file (even if unchanged)."""
        if self.settings.trustspace.url:
            return await self.fetch_url()
        self._file_signature = await asyncio.to_thread(self._stat_file)
        return await self.load_file()

    async def run_periodic(self, stop_event: asyncio.Event) -> None:
        """Until ``stop_event``: watch the file every ``file_check_interval`` seconds and
        fetch the URL every ``refresh_interval`` seconds. Never raises on a bad list."""
        ts = self.settings.trustspace
        next_fetch = time.monotonic() + ts.refresh_interval
        while not stop_event.is_set():
            try:
                await asyncio.wait_for(stop_event.wait(), timeout=ts.file_check_interval)
                return
            except TimeoutError:
                pass
            await self.check_file()
            if ts.url and time.monotonic() >= next_fetch:
                await self.fetch_url()
                next_fetch = time.monotonic() + ts.refresh_interval


def loaded_at_text(space: TrustSpace) -> str:
    """When a list was loaded, for people (UTC, to the second)."""
    return space.loaded_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
