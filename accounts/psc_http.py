"""HTTPS requests to Pro Santé Connect: discovery, keys, introspection, token endpoint.

Every answer is JSON, read with a size bound (the other side is trusted to be PSC, not to
be well-behaved), over TLS verified against ``[psc] ca_file`` or the system's anchors,
without following redirects (a redirect could carry a client secret elsewhere).
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from config.settings import PscSettings

MAX_ANSWER = 256 * 1024
"""Largest JSON answer read from PSC (a JWKS of a few keys is a few KiB)."""


class PscUnavailable(Exception):
    """PSC did not answer usably; the message says what, for the log (never a token)."""


def tls_context(settings: PscSettings) -> ssl.SSLContext:
    """Verifies PSC's servers against ``ca_file`` (or the system's anchors); TLS 1.2+."""
    ctx = ssl.create_default_context(cafile=settings.ca_file or None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


@dataclass
class PscHttp:
    """One HTTP client for every PSC endpoint (connections are reused)."""

    settings: PscSettings
    _client: httpx.AsyncClient | None = None

    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                verify=tls_context(self.settings), timeout=self.settings.http_timeout,
                follow_redirects=False, trust_env=False)
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def get_json(self, url: str) -> dict[str, Any]:
        return await self._json("GET", url, None, None)

    async def post_form(self, url: str, form: Mapping[str, str],
                        auth: tuple[str, str] | None = None) -> dict[str, Any]:
        return await self._json("POST", url, dict(form), auth)

    async def _json(self, method: str, url: str, form: dict[str, str] | None,
                    auth: tuple[str, str] | None) -> dict[str, Any]:
        if not url.startswith("https://"):
            raise PscUnavailable(f"{url} is not an https:// address")
        try:
            async with self.client().stream(
                method, url, data=form, auth=auth,
                headers={"accept": "application/json"},
            ) as answer:
                body = bytearray()
                async for chunk in answer.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_ANSWER:
                        raise PscUnavailable(f"{url} answered more than {MAX_ANSWER} octets")
                status = answer.status_code
        except httpx.HTTPError as exc:
            raise PscUnavailable(f"{url}: {type(exc).__name__}: {exc}") from None
        try:
            document = json.loads(bytes(body))
        except ValueError:
            raise PscUnavailable(f"{url} answered HTTP {status} without JSON") from None
        if not isinstance(document, dict):
            raise PscUnavailable(f"{url} answered HTTP {status} with JSON that is no object")
        if status >= 400 and "error" not in document:
            raise PscUnavailable(f"{url} answered HTTP {status}")
        if status >= 400:
            document.setdefault("_status", status)
        return document
