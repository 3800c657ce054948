"""HTML bodies made inert before they are shown, with nh3 (Python binding of the Rust
crate ammonia, an allow-list sanitiser driven by the html5ever parser).

What is kept: text formatting, lists, tables, links and images, and no attribute outside
ammonia's default allow-list: no ``style`` (so no CSS expression or ``url()``), no ``on*``
handler, no ``<script>``, ``<style>``, ``<svg>``, ``<form>``, ``<iframe>``, ``<object>``,
``<base>`` or ``<meta>`` (the content of ``<script>`` and ``<style>`` is dropped with them).
URLs keep only the ``http``, ``https`` and ``mailto`` schemes, so ``javascript:``,
``data:`` and ``vbscript:`` links lose their target. Every link opens in a new tab with
``rel="noopener noreferrer"`` (the message's page is not handed to the target, nor its
address).

Images the message carries itself (``multipart/related`` parts named by ``cid:`` URLs,
RFC 2392) are shown from the message's own part through a URL of the webmail, checked
against the session's rights like an attachment (:mod:`web.webmail.reading`): nothing is
fetched from elsewhere and the CSP's ``img-src 'self'`` is enough.

Remote images are tracking beacons as often as pictures: their ``src`` is dropped unless
the reader asked to see the images of this message (the page then also relaxes its
Content-Security-Policy to ``img-src https:`` for that answer only). The page's CSP forbids
inline script and style in any case, so a sanitiser miss could still run nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote

import nh3

URL_SCHEMES = frozenset({"http", "https", "mailto"})
URL_ATTRIBUTES = frozenset({"href", "src", "cite", "longdesc", "srcset", "usemap",
                            "background", "poster", "action", "formaction"})
"""Attributes holding a URL, where a ``cid:`` left unrewritten is dropped."""
LINK_REL = "noopener noreferrer"
MAX_HTML = 2 * 1024 * 1024
"""Characters of an HTML body sanitised and shown; the rest is cut (the original stays in
the message, downloadable as a whole from the mail client)."""


@dataclass(frozen=True, slots=True)
class CleanHtml:
    html: str
    blocked_images: int
    """Remote images whose address was removed (0: nothing to offer to show)."""
    truncated: bool


def sanitise(html: str, *, images: bool = False,
             inline: Mapping[str, str] | None = None) -> CleanHtml:
    """``html`` with nothing active left; remote images kept only when ``images``;
    ``cid:`` images (RFC 2392) pointing at a Content-ID of ``inline`` get the URL it maps
    the Content-ID to (the message's own part, served after a rights check), others none."""
    truncated = len(html) > MAX_HTML
    blocked = 0
    parts = inline or {}

    def keep(tag: str, attribute: str, value: str) -> str | None:
        nonlocal blocked
        text = value.strip()
        if text[:4].lower() == "cid:":
            # RFC 2392: "cid:" and the Content-ID's addr-spec, %-encoded; only an image's
            # src may name a part, and only one the message holds.
            if tag == "img" and attribute == "src":
                return parts.get(unquote(text[4:]))
            return None if attribute in URL_ATTRIBUTES else value
        if tag == "img" and attribute == "src":
            scheme = text.split(":", 1)[0].lower() if ":" in text else ""
            if scheme in {"http", "https"} and not images:
                blocked += 1
                return None
            if scheme != "https" or not images:
                return None  # cid:, relative and plain-http images never load
        return value

    # "cid" passes ammonia's scheme check only to reach ``keep``, which rewrites or drops it.
    cleaned = nh3.clean(html[:MAX_HTML], url_schemes={*URL_SCHEMES, "cid"}, link_rel=LINK_REL,
                        set_tag_attribute_values={"a": {"target": "_blank"}},
                        attribute_filter=keep, strip_comments=True)
    return CleanHtml(cleaned, blocked, truncated)
