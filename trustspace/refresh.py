"""Keeping the trust space current: local file, HTTPS download, last good copy on disk.

A refresh either replaces the whole list with a valid one or changes nothing: an empty,
truncated or foreign document, an unreachable or untrusted server, all leave the previous
list in force and are logged as one ``event=trustspace_refresh_refused`` line. The last
good document is kept on disk so a restart while the publisher is down still has a list.

The files are the one source of truth shared by every process of a data directory: the
list in force is the newest valid one of the local file and the last good copy. Whoever
adopts a list (the gateway, or ``mssante trustspace refresh``) writes the last good copy;
a running gateway watches both files, so a refresh done from the command line reaches it
within ``file_check_interval`` seconds (or at once on SIGHUP). ``show`` and ``check`` only
read (``read_only``): looking at the list never changes it.
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

Signature = tuple[int, int, int]


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
    if not settings.embedded or path.exists() or last_good_path(settings).exists():
        # A kept list (say from the URL) must not be shadowed by a newer default file.
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

    def __init__(self, settings: Settings, *, read_only: bool = False) -> None:
        self.settings = settings
        self.read_only = read_only
        """Never writes the last good copy (the CLI's ``show`` and ``check``)."""
        self._current: TrustSpace | None = None
        self._file_signature: Signature | None = None
        self._good_signature: Signature | None = None
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

    async def _adopt(self, space: TrustSpace, *, save: bool = True) -> RefreshResult:
        changed = self._current is None or self._current.domains != space.domains
        self._current = space
        if not save:  # it came from the last good copy: that is what the file holds
            self._saved_raw = space.raw
        elif not self.read_only and space.raw != self._saved_raw:
            await asyncio.to_thread(write_atomically, self.last_good_file, space.raw)
            self._saved_raw = space.raw
            # Our own write: the watch must not take it for another process's refresh.
            self._good_signature = await asyncio.to_thread(_stat, self.last_good_file)
        log.info(
            "event=trustspace_loaded source=%s domains=%d skipped=%d changed=%s",
            _kv(space.source), space.count, len(space.skipped), str(changed).lower(),
        )
        return RefreshResult(True, space.source, space.count, changed=changed)

    # -- sources --
    def _stat_file(self) -> Signature | None:
        return _stat(self.settings.trustspace_file)

    async def load_file(self, path: Path | None = None, *, save: bool = True) -> RefreshResult:
        """Reads and adopts a whitelist file; on failure the list in force stays.

        ``save=False``: the file is the last good copy itself, nothing to write back."""
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
        return await self._adopt(space, save=save)

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
        """Reloads what changed since last looked at: the local file (an operator's edit) or
        the last good copy (written by ``mssante trustspace refresh``); None if neither.

        When both changed, the newer is adopted last, so it is the one in force."""
        changed: list[tuple[Signature, Path]] = []
        file_sig = await asyncio.to_thread(self._stat_file)
        if file_sig is not None and file_sig != self._file_signature:
            self._file_signature = file_sig
            changed.append((file_sig, self.settings.trustspace_file))
        good_sig = await asyncio.to_thread(_stat, self.last_good_file)
        if good_sig is not None and good_sig != self._good_signature:
            self._good_signature = good_sig
            changed.append((good_sig, self.last_good_file))
        result: RefreshResult | None = None
        for _sig, path in sorted(changed, key=lambda c: c[0][0]):
            outcome = await self.load_file(path, save=path != self.last_good_file)
            if outcome.ok or result is None or not result.ok:
                result = outcome
        return result

    async def load_in_force(self) -> RefreshResult:
        """The newest valid one of the local file and the last good copy: the list a
        running gateway holds, or would load offline. Raises WhitelistError naming each
        file tried when none is valid."""
        candidates: list[tuple[Signature, Path]] = []
        for path in (self.settings.trustspace_file, self.last_good_file):
            sig = await asyncio.to_thread(_stat, path)
            if sig is not None:
                candidates.append((sig, path))
        self._file_signature = await asyncio.to_thread(self._stat_file)
        self._good_signature = await asyncio.to_thread(_stat, self.last_good_file)
        tried: list[str] = []
        for _sig, path in sorted(candidates, key=lambda c: c[0][0], reverse=True):
            result = await self.load_file(path, save=path != self.last_good_file)
            if result.ok:
                return result
            tried.append(f"{result.source}: {result.detail}")
        if not tried:
            tried.append(f"{self.settings.trustspace_file}: the file does not exist")
        raise WhitelistError("empty", "no valid trust space could be loaded (" +
                             "; ".join(tried) + ")")

    async def load_initial(self, *, offline: bool = False) -> RefreshResult:
        """Start-up: URL first (unless ``offline``), then :meth:`load_in_force`.

        Raises WhitelistError when no source gives a valid list: the relay cannot decide
        anything without one, and starting with an empty list would refuse every peer.
        """
        tried = ""
        if self.settings.trustspace.url and not offline:
            result = await self.fetch_url()
            if result.ok:
                self._file_signature = await asyncio.to_thread(self._stat_file)
                return result
            tried = f"{result.source}: {result.detail}; "
        try:
            return await self.load_in_force()
        except WhitelistError as exc:
            if not tried:
                raise
            detail = str(exc).replace("(", "(" + tried, 1)
            raise WhitelistError("empty", detail) from None

    async def refresh(self) -> RefreshResult:
        """Fetches now: the URL when configured, else the local file (even if unchanged)."""
        if self.settings.trustspace.url:
            return await self.fetch_url()
        self._file_signature = await asyncio.to_thread(self._stat_file)
        return await self.load_file()

    async def run_periodic(self, stop_event: asyncio.Event, *, fetch: bool = True) -> None:
        """Until ``stop_event``: watch the file every ``file_check_interval`` seconds and
        fetch the URL every ``refresh_interval`` seconds. Never raises on a bad list.
        ``fetch=False``: watch the files only (a worker process: its supervisor fetches and
        writes the last good copy, which this loop then picks up)."""
        ts = self.settings.trustspace
        next_fetch = time.monotonic() + ts.refresh_interval
        while not stop_event.is_set():
            try:
                await asyncio.wait_for(stop_event.wait(), timeout=ts.file_check_interval)
                return
            except TimeoutError:
                pass
            await self.check_file()
            if fetch and ts.url and time.monotonic() >= next_fetch:
                await self.fetch_url()
                next_fetch = time.monotonic() + ts.refresh_interval


def _stat(path: Path) -> Signature | None:
    """(mtime, size, inode) of ``path``, None if absent: a change of any means a new file."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def loaded_at_text(space: TrustSpace) -> str:
    """When a list was loaded, for people (UTC, to the second)."""
    return space.loaded_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
