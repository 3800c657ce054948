"""The HTTP application of the gateway (Starlette): health, metrics, client autoconfiguration.

Every route is served over HTTPS only (see :mod:`web.server`) with the headers of
:mod:`web.headers`. ``/metrics`` answers only the addresses of ``[web] metrics_from``: the
figures say how busy each service is and when certificates expire, which is nobody else's
business. Errors people may read are in French.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from web.autoconfig import (
    MAX_AUTODISCOVER_REQUEST,
    AutoconfigError,
    ClientSettings,
    autodiscover_address,
    autodiscover_error,
    autodiscover_response,
    thunderbird_config,
)
from web.headers import SecurityHeaders
from web.health import Check, run_checks
from web.metrics import CONTENT_TYPE, GatewayMetrics

if TYPE_CHECKING:
    from web.portal import PortalDeps
    from web.webmail.base import WebmailDeps

XML = "application/xml; charset=utf-8"
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class WebDeps:
    """What the HTTP side needs from the rest of the gateway, and nothing more."""

    client: ClientSettings
    metrics: GatewayMetrics
    readiness: Mapping[str, Check]
    metrics_from: Sequence[Network]
    portal: PortalDeps | None = None
    """The professionals' portal (:mod:`web.portal`); None serves only the routes above."""
    webmail: WebmailDeps | None = None
    """The webmail (:mod:`web.webmail`, under ``/courrier/``), behind the portal's sign-in."""


def parse_networks(values: Sequence[str]) -> list[Network]:
    """``["127.0.0.1", "10.0.0.0/8", "::1"]`` → networks; raises ValueError naming a bad one."""
    out: list[Network] = []
    for value in values:
        try:
            out.append(ipaddress.ip_network(value, strict=False))
        except ValueError:
            raise ValueError(f"{value!r} is not an address or network") from None
    return out


def _client_allowed(request: Request, networks: Sequence[Network]) -> bool:
    host = request.client.host if request.client else ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


async def _read_limited(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it exceeds ``limit`` (nothing larger is buffered)."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


def build_app(deps: WebDeps) -> Starlette:
    """The application; ``deps`` are the gateway's parts the routes use."""

    async def healthz(_request: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def readyz(_request: Request) -> Response:
        readiness = await run_checks(deps.readiness)
        return JSONResponse(
            {"ready": readiness.ready, "checks": readiness.results},
            status_code=200 if readiness.ready else 503,
        )

    async def metrics(request: Request) -> Response:
        if not _client_allowed(request, deps.metrics_from):
            return PlainTextResponse(
                "Accès refusé : les métriques ne sont servies qu'aux adresses de "
                "[web] metrics_from.\n", status_code=403)
        return Response(await deps.metrics.render(), media_type=CONTENT_TYPE)

    async def autoconfig(request: Request) -> Response:
        address = request.query_params.get("emailaddress")
        try:
            return Response(thunderbird_config(deps.client, address), media_type=XML)
        except AutoconfigError as exc:
            return PlainTextResponse(f"{exc}\n", status_code=400)
        except LookupError:
            return PlainTextResponse(
                "Aucune configuration ici pour ce domaine : il n'est pas servi par cet "
                "opérateur.\n", status_code=404)

    async def autodiscover(request: Request) -> Response:
        if request.method == "GET":
            # Outlook only POSTs; a GET is a person or a probe: say what this is.
            return Response(autodiscover_error(600, "Invalid Request"), media_type=XML,
                            status_code=405, headers={"allow": "POST"})
        body = await _read_limited(request, MAX_AUTODISCOVER_REQUEST)
        if body is None:
            return Response(autodiscover_error(600, "Request too large"), media_type=XML,
                            status_code=413)
        try:
            address = autodiscover_address(body)
            return Response(autodiscover_response(deps.client, address), media_type=XML)
        except AutoconfigError as exc:
            return Response(autodiscover_error(600, str(exc)), media_type=XML,
                            status_code=400)
        except LookupError:
            return Response(autodiscover_error(603, "No configuration for this domain"),
                            media_type=XML, status_code=404)

    routes: list[BaseRoute] = [
        Route("/healthz", healthz, methods=["GET", "HEAD"]),
        Route("/readyz", readyz, methods=["GET", "HEAD"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/.well-known/autoconfig/mail/config-v1.1.xml", autoconfig, methods=["GET"]),
        Route("/mail/config-v1.1.xml", autoconfig, methods=["GET"]),
        Route("/autodiscover/autodiscover.xml", autodiscover, methods=["GET", "POST"]),
        Route("/Autodiscover/Autodiscover.xml", autodiscover, methods=["GET", "POST"]),
    ]
    if deps.portal is not None:
        from web.portal import Portal

        routes.extend(Portal(deps.portal).routes())
    if deps.webmail is not None:
        from web.webmail import routes as webmail_routes

        routes.extend(webmail_routes(deps.webmail))
    return Starlette(routes=routes, middleware=[Middleware(SecurityHeaders)])
