"""Reads settings from a TOML file and ``MSSANTE_*`` environment variables.

Every mistake becomes a :class:`ConfigError` that names where the value came from (file or
variable), the key, the offending value and what is allowed, so that ``mssante`` can print
one line and exit 2 instead of starting half-configured.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from config.settings import SECTIONS, Settings
from config.transport import parse_transport

ENV_PREFIX = "MSSANTE_"
ENV_HOME = "MSSANTE_HOME"
ENV_CONFIG = "MSSANTE_CONFIG"
DEFAULT_DATA_DIR = Path("var")
CONFIG_NAME = "mssante.toml"


class ConfigError(Exception):
    """A setting that cannot be used; the message is one line meant for a person."""

    def __init__(self, source: str, key: str, value: Any, allowed: str) -> None:
        self.source, self.key, self.value, self.allowed = source, key, value, allowed
        super().__init__(f"{source}: {key} = {value!r} is not valid: {allowed}")


def resolve_data_dir(data_dir: str | Path | None, env: Mapping[str, str]) -> Path:
    """``--data-dir`` wins over ``MSSANTE_HOME``, which wins over ``./var``."""
    raw = data_dir if data_dir else env.get(ENV_HOME) or DEFAULT_DATA_DIR
    return Path(raw).expanduser().absolute()


def resolve_config_file(
    config_file: str | Path | None, data_dir: Path, env: Mapping[str, str]
) -> Path:
    raw = config_file if config_file else env.get(ENV_CONFIG)
    return Path(raw).expanduser().absolute() if raw else data_dir / CONFIG_NAME


def load_settings(
    config_file: str | Path | None = None,
    data_dir: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Settings:
    """Builds :class:`Settings` from defaults, then the file (if present), then the environment.

    ``overrides`` (section → key → value) is applied last; tests use it to pick ports.
    A missing file is not an error (first start writes it); an explicit ``config_file`` that
    does not exist is.
    """
    env = os.environ if env is None else env
    ddir = resolve_data_dir(data_dir, env)
    cfile = resolve_config_file(config_file, ddir, env)
    explicit = bool(config_file or env.get(ENV_CONFIG))

    raw: dict[str, Any] = {}
    if cfile.exists():
        try:
            with cfile.open("rb") as fh:
                raw = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(str(cfile), "(file)", "…", f"invalid TOML: {exc}") from None
        except OSError as exc:
            raise ConfigError(str(cfile), "(file)", "…", f"cannot read: {exc.strerror}") from None
    elif explicit:
        raise ConfigError(str(cfile), "(file)", str(cfile), "the configuration file does not exist")

    values: dict[str, dict[str, Any]] = {}
    for section, content in raw.items():
        if section == "transport":
            values["transport"] = _transport(str(cfile), content)
            continue
        if section == "relay_peers":
            values["relay_peers"] = _relay_peers(str(cfile), content)
            continue
        cls = SECTIONS.get(section)
        if cls is None:
            raise ConfigError(
                str(cfile), f"[{section}]", "…", "unknown section; known: "
                + ", ".join(sorted([*SECTIONS, "relay_peers", "transport"]))
            )
        if not isinstance(content, dict):
            raise ConfigError(str(cfile), section, content, "must be a table [" + section + "]")
        values[section] = {
            k: _coerce(str(cfile), section, cls, k, v, from_text=False) for k, v in content.items()
        }

    for name, text in env.items():
        if not name.startswith(ENV_PREFIX) or name in (ENV_HOME, ENV_CONFIG):
            continue
        section, key = _env_target(name, text)
        values.setdefault(section, {})[key] = _coerce(
            f"environment variable {name}", section, SECTIONS[section], key, text, from_text=True
        )

    for section, content in (overrides or {}).items():
        if section == "transport":
            values.setdefault("transport", {}).update(content)
            continue
        if section == "relay_peers":
            values.setdefault("relay_peers", {}).update(_relay_peers("override", content))
            continue
        for k, v in content.items():
            values.setdefault(section, {})[k] = _coerce(
                "override", section, SECTIONS[section], k, v, from_text=isinstance(v, str)
            )

    kwargs: dict[str, Any] = {"data_dir": ddir, "config_file": cfile}
    for section, cls in SECTIONS.items():
        kwargs[section] = cls(**values.get(section, {}))
    kwargs["transport"] = dict(values.get("transport", {}))
    kwargs["relay_peers"] = dict(values.get("relay_peers", {}))
    settings = Settings(**kwargs)
    _check_consistency(settings, str(cfile))
    return settings


def _env_target(name: str, text: str) -> tuple[str, str]:
    rest = name[len(ENV_PREFIX):].lower()
    for section in sorted(SECTIONS, key=len, reverse=True):
        if rest.startswith(section + "_"):
            return section, rest[len(section) + 1:]
    raise ConfigError(
        f"environment variable {name}", name, text,
        "unknown variable; use MSSANTE_<SECTION>_<KEY> with a section among "
        + ", ".join(sorted(SECTIONS)) + ", or MSSANTE_HOME / MSSANTE_CONFIG"
        + " ([transport] and [relay_peers] are set in the file only)",
    )


def _transport(source: str, content: Any) -> dict[str, str]:
    if not isinstance(content, dict):
        raise ConfigError(source, "transport", content, 'a table of domain = "host:port"')
    out: dict[str, str] = {}
    for domain, target in content.items():
        if not isinstance(target, str) or not _is_transport(target):
            raise ConfigError(
                source, f"transport.{domain}", target,
                'a string "host:port" or "host:port name=NAME"',
            )
        out[str(domain).lower()] = target
    return out


def _is_transport(text: str) -> bool:
    """A port is required in the file (a bare "nohost" is more likely a slip than port 25)."""
    try:
        parse_transport(text)
    except ValueError:
        return False
    return ":" in text.split(" ", 1)[0]


_RELAY_PEERS_RULE = (
    'a table of "certificate DNS name" or "sha256:<64 hex digits>" = ["sender.domain", ...]'
)


def _relay_peers(source: str, content: Any) -> dict[str, tuple[str, ...]]:
    """``[relay_peers]``: peer key → sender domains, keys and domains lower-cased.

    A key is a DNS name of the peer's certificate (SAN dNSName) or its SHA-256 fingerprint
    written ``sha256:`` + 64 hex digits (colons allowed, as ``openssl x509 -fingerprint``
    prints them), so that an operator can pin one certificate rather than a name.
    """
    if not isinstance(content, dict):
        raise ConfigError(source, "relay_peers", content, _RELAY_PEERS_RULE)
    out: dict[str, tuple[str, ...]] = {}
    for raw_key, domains in content.items():
        key = str(raw_key).strip().lower()
        where = f"relay_peers.{raw_key}"
        if key.startswith("sha256:"):
            digest = key[len("sha256:"):].replace(":", "")
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise ConfigError(source, where, raw_key,
                                  "a fingerprint written sha256: then 64 hex digits")
            key = "sha256:" + digest
        elif not _is_dns_name(key):
            raise ConfigError(source, where, raw_key, _RELAY_PEERS_RULE)
        if isinstance(domains, str):
            domains = [domains]
        if (not isinstance(domains, (list, tuple)) or not domains
                or not all(isinstance(d, str) and _is_dns_name(d.strip().lower().rstrip("."))
                           for d in domains)):
            raise ConfigError(source, where, domains, "a non-empty list of domain names")
        out[key] = tuple(d.strip().lower().rstrip(".") for d in domains)
    return out


def _is_dns_name(text: str) -> bool:
    labels = text.split(".")
    return len(labels) >= 2 and all(
        0 < len(label) <= 63 and all(c.isalnum() or c in "-_" for c in label)
        for label in labels
    )


def _is_oid(text: str) -> bool:
    arcs = text.split(".")
    return len(arcs) >= 2 and all(a.isascii() and a.isdecimal() for a in arcs)


def _type_name(tp: Any) -> str:
    if tp is bool:
        return "a boolean (true/false)"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if tp is str:
        return "a string"
    return "a list of strings"


def _coerce(source: str, section: str, cls: type, key: str, value: Any, *, from_text: bool) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if key not in fields:
        raise ConfigError(
            source, f"{section}.{key}", value,
            f"unknown key; keys of [{section}] are: {', '.join(sorted(fields))}",
        )
    fld = fields[key]
    hints = typing.get_type_hints(cls)
    tp = hints[key]
    where = f"{section}.{key}"
    meta = fld.metadata
    result: Any
    if tp is bool:
        if from_text and isinstance(value, str):
            low = value.strip().lower()
            if low in ("1", "true", "yes", "on"):
                result = True
            elif low in ("0", "false", "no", "off"):
                result = False
            else:
                raise ConfigError(source, where, value, _type_name(tp))
        elif isinstance(value, bool):
            result = value
        else:
            raise ConfigError(source, where, value, _type_name(tp))
    elif tp in (int, float):
        if from_text and isinstance(value, str):
            try:
                value = tp(value.strip())
            except ValueError:
                raise ConfigError(source, where, value, _type_name(tp)) from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(source, where, value, _type_name(tp))
        if tp is int and not isinstance(value, int):
            raise ConfigError(source, where, value, _type_name(tp))
        result = tp(value)
        lo, hi = meta.get("min"), meta.get("max")
        if meta.get("port"):
            lo, hi = 0, 65535
        if (lo is not None and result < lo) or (hi is not None and result > hi):
            if meta.get("port"):
                allowed = "a port number from 1 to 65535 (0: any free port)"
            else:
                allowed = f"{_type_name(tp)} from {lo if lo is not None else '-inf'}"
                allowed += f" to {hi if hi is not None else 'inf'}"
            raise ConfigError(source, where, value, allowed)
    elif tp is str:
        if not isinstance(value, str):
            raise ConfigError(source, where, value, _type_name(tp))
        result = value
        choices = meta.get("choices")
        if choices and value not in choices:
            raise ConfigError(source, where, value, "one of " + ", ".join(choices))
    elif _is_str_tuple(tp):
        if from_text and isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ConfigError(source, where, value, _type_name(tp))
        if meta.get("networks"):
            for item in value:
                try:
                    ipaddress.ip_network(item, strict=False)
                except ValueError:
                    raise ConfigError(
                        source, where, item, "IP addresses or networks (10.0.0.0/8, ::1)"
                    ) from None
        result = tuple(value)
    else:  # pragma: no cover - a field type this loader does not know is a programming error
        raise TypeError(f"unsupported settings type {tp!r} for {where}")
    return result


def _is_str_tuple(tp: Any) -> bool:
    return typing.get_origin(tp) is tuple or isinstance(tp, types.GenericAlias)


def _check_consistency(settings: Settings, source: str) -> None:
    if not settings.gateway.domains:
        raise ConfigError(source, "gateway.domains", [], "at least one mail domain")
    for d in settings.gateway.domains:
        if "." not in d or d != d.strip() or " " in d:
            raise ConfigError(source, "gateway.domains", d, "a fully qualified domain name")
    if settings.gateway.mode == "production":
        for key, val in (("tls.cert_file", settings.tls.cert_file),
                         ("tls.key_file", settings.tls.key_file)):
            if not val:
                raise ConfigError(source, key, val, "required in production mode")
        if not settings.tls.anchors:
            raise ConfigError(source, "tls.anchors", [], "at least one anchor in production mode")
    ports = {
        "smtp.relay_port": settings.smtp.relay_port,
        "smtp.submission_port": settings.smtp.submission_port,
        "smtp.submissions_port": settings.smtp.submissions_port,
        "imap.port": settings.imap.port,
        "imap.tls_port": settings.imap.tls_port,
        "web.port": settings.web.port,
        "web.cps_port": settings.web.cps_port,
    }
    if not settings.directory.url:
        ports["directory.port"] = settings.directory.port
        ports["directory.ldaps_port"] = settings.directory.ldaps_port
    seen: dict[int, str] = {}
    for key, port in ports.items():
        if port and port in seen:
            raise ConfigError(source, key, port, f"a port not already used by {seen[port]}")
        seen[port] = key
    for key in ("server_policies", "application_policies", "personal_policies"):
        for oid in getattr(settings.certificates, key):
            if not _is_oid(oid):
                raise ConfigError(
                    source, f"certificates.{key}", oid,
                    "certificate policy OIDs in dotted form, such as 1.2.3.4",
                )
    _check_psc(settings, source)
    for url in settings.tls.crl_urls:
        if not url.startswith("https://") or len(url) <= len("https://"):
            raise ConfigError(source, "tls.crl_urls", url, "an https:// URL")
    witness = settings.proofs.witness_url
    if witness and (not witness.startswith("https://") or len(witness) <= len("https://")):
        raise ConfigError(source, "proofs.witness_url", witness, "an https:// URL")
    address = settings.proofs.witness_address
    if address and ("@" not in address or " " in address.strip()):
        raise ConfigError(source, "proofs.witness_address", address, "an e-mail address")
    for s in settings.smtp.retry_schedule:
        try:
            if float(s) <= 0:
                raise ValueError
        except ValueError:
            raise ConfigError(
                source, "smtp.retry_schedule", s, "positive numbers of seconds"
            ) from None


def _check_psc(settings: Settings, source: str) -> None:
    """[psc]: HTTPS addresses only (tokens and client secrets cross them), and a client
    identifier whenever an issuer is set."""
    psc = settings.psc
    for key in ("issuer", "introspection_url"):
        url = getattr(psc, key)
        if url and (not url.startswith("https://") or len(url) <= len("https://")):
            raise ConfigError(source, f"psc.{key}", url, "an https:// URL")
    if psc.jwks.startswith("http://"):
        raise ConfigError(source, "psc.jwks", psc.jwks, "a file path or an https:// URL")
    if psc.issuer and not psc.client_id:
        raise ConfigError(source, "psc.client_id", "", "required when psc.issuer is set")
    if not psc.id_claim:
        raise ConfigError(source, "psc.id_claim", [], "at least one claim name")
