"""The issuer's signing keys (JWKS) and discovery document, cached, with key rotation.

Keys come from ``[psc] jwks`` (a file, read again when it changes, or an https:// URL) or,
by default, from the ``jwks_uri`` of the issuer's discovery document (OpenID Connect
Discovery 1.0 §4). They are kept ``jwks_max_age`` seconds. A token naming a key id not in
the set makes the set be read again at once — the issuer has rotated its keys — but at most
once per ``jwks_min_refresh`` seconds, so that tokens with invented key ids cannot make
this gateway hammer PSC.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey

from accounts.psc_http import PscHttp, PscUnavailable
from config.settings import PscSettings

DISCOVERY_PATH = "/.well-known/openid-configuration"
SigningKey = RSAKey | ECKey


@dataclass(frozen=True)
class Discovery:
    """The parts of the issuer's discovery document this gateway uses."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    introspection_endpoint: str = ""
    end_session_endpoint: str = ""


class ProviderMetadata:
    """The discovery document of ``[psc] issuer``, read once and kept ``jwks_max_age``."""

    def __init__(self, settings: PscSettings, http: PscHttp,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._settings = settings
        self._http = http
        self._clock = clock
        self._cached: tuple[float, Discovery] | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> Discovery:
        async with self._lock:
            if self._cached and self._cached[0] > self._clock():
                return self._cached[1]
            url = self._settings.issuer.rstrip("/") + DISCOVERY_PATH
            doc = await self._http.get_json(url)
            # Discovery §4.3: the issuer in the document must be exactly the one configured.
            if doc.get("issuer") != self._settings.issuer:
                raise PscUnavailable(
                    f"{url} names issuer {str(doc.get('issuer'))[:200]!r}, not the configured "
                    f"{self._settings.issuer!r}")
            try:
                found = Discovery(
                    issuer=doc["issuer"],
                    authorization_endpoint=_https(doc, "authorization_endpoint"),
                    token_endpoint=_https(doc, "token_endpoint"),
                    jwks_uri=_https(doc, "jwks_uri"),
                    introspection_endpoint=str(doc.get("introspection_endpoint", "")),
                    end_session_endpoint=str(doc.get("end_session_endpoint", "")),
                )
            except KeyError as exc:
                raise PscUnavailable(f"{url} lacks an https:// {exc.args[0]}") from None
            self._cached = (self._clock() + self._settings.jwks_max_age, found)
            return found


def _https(doc: dict[str, Any], key: str) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or not value.startswith("https://"):
        raise KeyError(key)
    return value


class KeyStore:
    """The issuer's public signing keys by key id."""

    def __init__(self, settings: PscSettings, http: PscHttp, metadata: ProviderMetadata,
                 data_dir: Path | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._settings = settings
        self._http = http
        self._metadata = metadata
        self._clock = clock
        source = settings.jwks
        self._file: Path | None = None
        if source and not source.startswith("https://"):
            path = Path(source)
            self._file = path if path.is_absolute() or data_dir is None else data_dir / path
        self._keys: list[SigningKey] = []
        self._expires = 0.0
        self._last_read = -1e18
        self._file_stamp: tuple[int, int] | None = None
        self._lock = asyncio.Lock()
        self.reads = 0
        """How many times the keys were read (tests check the rotation rate limit)."""

    async def find(self, kid: str | None) -> SigningKey | None:
        """The key ``kid`` names (or the only key when the token names none), or None."""
        async with self._lock:
            if self._stale():
                await self._read()
            key = self._pick(kid)
            if key is None and self._clock() - self._last_read >= self._settings.jwks_min_refresh:
                await self._read()  # an unknown key id: the issuer may have rotated
                key = self._pick(kid)
            return key

    def _stale(self) -> bool:
        if self._clock() >= self._expires:
            return True
        if self._file is not None:
            try:
                st = self._file.stat()
            except OSError:
                return False  # keep the last good keys; reading will say what is wrong
            return (st.st_mtime_ns, st.st_size) != self._file_stamp
        return False

    def _pick(self, kid: str | None) -> SigningKey | None:
        if kid is None:
            return self._keys[0] if len(self._keys) == 1 else None
        for key in self._keys:
            if key.kid == kid:
                return key
        return None

    async def _read(self) -> None:
        self._last_read = self._clock()
        self.reads += 1
        if self._file is not None:
            path = self._file
            try:
                st = path.stat()
                document = json.loads(await asyncio.to_thread(path.read_bytes))
            except (OSError, ValueError) as exc:
                if self._keys:
                    return  # the last good keys stay until the file is readable again
                raise PscUnavailable(f"cannot read the JWKS file {path}: {exc}") from None
            self._file_stamp = (st.st_mtime_ns, st.st_size)
        else:
            url = self._settings.jwks or (await self._metadata.get()).jwks_uri
            document = await self._http.get_json(url)
        self._keys = parse_jwks(document)
        self._expires = self._clock() + self._settings.jwks_max_age


def parse_jwks(document: Any) -> list[SigningKey]:
    """The public RSA and EC signing keys of a JWKS (RFC 7517 §5); others are skipped
    (an encryption key, a symmetric key: nothing a signature may be checked with here)."""
    keys: list[SigningKey] = []
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise PscUnavailable("the JWKS has no \"keys\" list")
    for entry in entries[:100]:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        public = {k: v for k, v in entry.items() if k not in {"d", "p", "q", "dp", "dq", "qi"}}
        try:
            if entry.get("kty") == "RSA":
                keys.append(RSAKey.import_key(public))
            elif entry.get("kty") == "EC":
                keys.append(ECKey.import_key(public))
        except (JoseError, ValueError, TypeError):
            continue
    return keys
