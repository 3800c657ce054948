"""The configuration reference as a Markdown table, from the settings' own metadata."""

from __future__ import annotations

import dataclasses

from config.settings import SECTIONS
from config.template import _toml_value


def markdown_reference() -> str:
    """One table per section: key, default, meaning. The README embeds this output."""
    out: list[str] = []
    for section, cls in SECTIONS.items():
        out.append(f"**[{section}]** — {(cls.__doc__ or '').split(':', 1)[-1].strip()}\n")
        out.append("| key | default | meaning |")
        out.append("| --- | --- | --- |")
        for fld in dataclasses.fields(cls):
            default = _toml_value(fld.default).replace("|", "\\|")
            doc = str(fld.metadata.get("doc", "")).replace("|", "\\|")
            out.append(f"| `{fld.name}` | `{default}` | {doc} |")
        out.append("")
    out.append(
        '**[transport]** — `"domain" = "host:port"` pairs overriding MX resolution; add '
        '`name=HOST` after the port to say which name the peer certificate must carry '
        '(default: the host, or the domain itself when the host is an IP address).\n'
    )
    out.append(
        '**[relay_peers]** — `"certificate DNS name"` or `"sha256:FINGERPRINT"` = '
        '`["sender.domain", ...]`: more sender domains a relaying peer may use when '
        '`smtp.relay_sender_binding = "certificate"`.\n'
    )
    return "\n".join(out)
