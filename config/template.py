"""Writes the commented ``mssante.toml`` at first start, from the settings' own metadata.

The file lists every key with its default commented out, so a user sees what can be tuned
and what the gateway does when a key is absent.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from config.settings import SECTIONS


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def render_template() -> str:
    """The whole commented configuration file as text."""
    lines = [
        "# mssante-gateway configuration.",
        "# Every key is shown with its default, commented out. Uncomment to change it.",
        "# Any key can also be set from the environment: MSSANTE_<SECTION>_<KEY>,",
        "# for example MSSANTE_DATABASE_URL or MSSANTE_SMTP_RELAY_PORT.",
        "",
    ]
    for section, cls in SECTIONS.items():
        lines.append(f"# {(cls.__doc__ or '').strip()}")
        lines.append(f"[{section}]")
        for fld in dataclasses.fields(cls):
            lines.append(f"# {fld.metadata.get('doc', '')}")
            lines.append(f"#{fld.name} = {_toml_value(fld.default)}")
        lines.append("")
    lines += [
        "# [transport]: domain = \"host:port\" overrides of MX resolution. The peer",
        "# certificate must name the host, or the domain when the host is an IP address;",
        "# \"host:port name=mx.example\" names another.",
        "[transport]",
        '#"hopital-b.mssante.test" = "127.0.0.1:2526"',
        "",
        "# [relay_peers]: more sender domains a relaying peer may use with",
        '# smtp.relay_sender_binding = "certificate": a DNS name of its certificate, or',
        '# "sha256:" + the certificate fingerprint, = a list of sender domains.',
        "[relay_peers]",
        '#"mx.operateur-b.fr" = ["ch-exemple.mssante.fr", "clinique-du-lac.mssante.fr"]',
        '#"sha256:0f1e...(64 hex digits)" = ["ght-sud.mssante.fr"]',
        "",
    ]
    return "\n".join(lines)


def write_template(path: Path, extra: dict[str, dict[str, Any]] | None = None) -> bool:
    """Writes the template if ``path`` does not exist; returns whether it wrote it.

    ``extra`` puts uncommented values at the top of their section (first start records, for
    instance, the domain chosen with ``mssante init --domain``).
    """
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    text = render_template()
    for section, values in (extra or {}).items():
        block = "".join(f"{k} = {_toml_value(v)}\n" for k, v in values.items())
        text = text.replace(f"[{section}]\n", f"[{section}]\n{block}", 1)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return True
