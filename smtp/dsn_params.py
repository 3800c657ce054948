"""MAIL FROM and RCPT TO parameters: SIZE, BODY, SMTPUTF8, AUTH and the DSN ones.

aiosmtpd refuses every parameter it does not know and upper-cases the ones it does, which
would corrupt the case-sensitive ``ENVID`` and ``ORCPT`` values. The gateway therefore parses
the parameter list itself, once, into typed values kept on the envelope: the outbound worker
and the DSN builder need them byte for byte (RFC 3461 §4, §5).

Every malformed parameter raises :class:`ParamError` naming the parameter, so the reply tells
the client exactly what to fix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# RFC 3461 §4: xchar is any ASCII from "!" to "~" except "+" and "="; hexchar is "+" HEX HEX
# with upper-case hex digits.
_XTEXT_RE = re.compile(r"(?:[!-*,-<>-~]|\+[0-9A-F]{2})*")
_HEXCHAR_RE = re.compile(r"\+([0-9A-F]{2})")
_KEYWORD_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")
_ATOM_RE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+")

ENVID_MAX = 100  # RFC 3461 §4.4: ENVID at most 100 characters
ORCPT_MAX = 500  # RFC 3461 §4.2: ORCPT at most 500 characters
NOTIFY_VALUES = frozenset({"SUCCESS", "FAILURE", "DELAY"})


class ParamError(ValueError):
    """A malformed or unsupported parameter; ``code``/``enhanced`` are the reply to send."""

    def __init__(self, param: str, text: str, code: int = 501, enhanced: str = "5.5.4") -> None:
        super().__init__(f"{param}: {text}")
        self.param = param
        self.text = text
        self.code = code
        self.enhanced = enhanced

    def reply(self) -> str:
        return f"{self.code} {self.enhanced} {self.param} parameter: {self.text}"


def xtext_decode(value: str) -> str:
    """Decodes RFC 3461 §4 xtext; raises ValueError on anything outside the grammar."""
    if not _XTEXT_RE.fullmatch(value):
        raise ValueError("not valid xtext (RFC 3461 section 4)")
    return _HEXCHAR_RE.sub(lambda m: chr(int(m.group(1), 16)), value)


def xtext_encode(value: str) -> str:
    """Encodes text as RFC 3461 §4 xtext: '+', '=' and non-printables become '+HH'.

    Non-ASCII characters are encoded as their UTF-8 octets, which keeps the result ASCII.
    """
    out: list[str] = []
    for byte in value.encode("utf-8"):
        if 33 <= byte <= 126 and byte not in (0x2B, 0x3D):
            out.append(chr(byte))
        else:
            out.append(f"+{byte:02X}")
    return "".join(out)


@dataclass(frozen=True)
class MailParams:
    """Parameters of MAIL FROM (RFC 1870 SIZE, RFC 6152 BODY, RFC 6531 SMTPUTF8, RFC 3461)."""

    size: int | None = None
    body: str = "7BIT"
    smtputf8: bool = False
    ret: str | None = None  # RFC 3461 §4.3: FULL or HDRS
    envid: str | None = None  # decoded xtext
    auth: str | None = None  # RFC 4954 §5, decoded xtext ("<>" when unknown)


@dataclass(frozen=True)
class RcptParams:
    """Parameters of RCPT TO (RFC 3461 §4.1 NOTIFY and §4.2 ORCPT)."""

    notify: frozenset[str] | None = None  # None: not given; {"NEVER"} or a subset of SUCCESS..
    orcpt: tuple[str, str] | None = None  # (address type, decoded address)


def _split(params: list[str]) -> dict[str, str | None]:
    """esmtp-param = esmtp-keyword ["=" esmtp-value] (RFC 5321 §4.1.2); keywords unique."""
    result: dict[str, str | None] = {}
    for item in params:
        key, eq, value = item.partition("=")
        if not _KEYWORD_RE.fullmatch(key):
            raise ParamError(key or item, "malformed parameter keyword")
        upper = key.upper()
        if eq and not value:
            raise ParamError(upper, "empty value")
        if eq and any(ord(c) < 33 or ord(c) == 127 for c in value):
            raise ParamError(upper, "value contains control characters or spaces")
        if upper in result:
            raise ParamError(upper, "given twice")
        result[upper] = value if eq else None
    return result


def parse_mail_params(params: list[str], *, size_limit: int, smtputf8_enabled: bool) -> MailParams:
    """Validates the MAIL FROM parameters; SIZE over ``size_limit`` is refused with 552."""
    values = _split(params)
    size: int | None = None
    if "SIZE" in values:
        raw = values.pop("SIZE")
        # RFC 1870 §3: size-value ::= 1*20DIGIT
        if raw is None or not raw.isascii() or not raw.isdigit() or len(raw) > 20:
            raise ParamError("SIZE", "expected a number of octets")
        size = int(raw)
        if size_limit and size > size_limit:
            # RFC 1870 §6.1: declared size over the fixed limit -> 552
            raise ParamError(
                "SIZE",
                f"message size {size} exceeds the fixed maximum of {size_limit} octets",
                code=552,
                enhanced="5.3.4",
            )
    body = "7BIT"
    if "BODY" in values:
        raw = values.pop("BODY")
        # RFC 6152 §2: BODY=7BIT or BODY=8BITMIME (BINARYMIME is not offered)
        if raw is None or raw.upper() not in ("7BIT", "8BITMIME"):
            raise ParamError("BODY", "expected 7BIT or 8BITMIME")
        body = raw.upper()
    smtputf8 = False
    if "SMTPUTF8" in values:
        # RFC 6531 §3.4: SMTPUTF8 takes no value
        if values.pop("SMTPUTF8") is not None:
            raise ParamError("SMTPUTF8", "takes no value")
        if not smtputf8_enabled:
            raise ParamError("SMTPUTF8", "not supported", code=555, enhanced="5.5.4")
        smtputf8 = True
    ret: str | None = None
    if "RET" in values:
        raw = values.pop("RET")
        # RFC 3461 §4.3: ret-value = "FULL" / "HDRS"
        if raw is None or raw.upper() not in ("FULL", "HDRS"):
            raise ParamError("RET", "expected FULL or HDRS")
        ret = raw.upper()
    envid: str | None = None
    if "ENVID" in values:
        raw = values.pop("ENVID")
        # RFC 3461 §4.4: ENVID = xtext, at most 100 characters
        if raw is None:
            raise ParamError("ENVID", "missing value")
        try:
            envid = xtext_decode(raw)
        except ValueError as exc:
            raise ParamError("ENVID", str(exc)) from None
        if len(envid) > ENVID_MAX:
            raise ParamError("ENVID", f"longer than {ENVID_MAX} characters")
    auth: str | None = None
    if "AUTH" in values:
        raw = values.pop("AUTH")
        # RFC 4954 §5: AUTH=<> or AUTH=xtext mailbox
        if raw is None:
            raise ParamError("AUTH", "missing value")
        if raw != "<>":
            try:
                auth = xtext_decode(raw)
            except ValueError as exc:
                raise ParamError("AUTH", str(exc)) from None
        else:
            auth = raw
    if values:
        # RFC 5321 §4.1.1.11: unrecognised parameter -> 555
        name = sorted(values)[0]
        raise ParamError(name, "not recognised or not implemented", code=555, enhanced="5.5.4")
    return MailParams(size=size, body=body, smtputf8=smtputf8, ret=ret, envid=envid, auth=auth)


def parse_rcpt_params(params: list[str]) -> RcptParams:
    """Validates the RCPT TO parameters (RFC 3461 §4.1, §4.2)."""
    values = _split(params)
    notify: frozenset[str] | None = None
    if "NOTIFY" in values:
        raw = values.pop("NOTIFY")
        if raw is None:
            raise ParamError("NOTIFY", "missing value")
        items = [v.upper() for v in raw.split(",")]
        # RFC 3461 §4.1: "NEVER" alone, or a list of SUCCESS, FAILURE, DELAY
        if items == ["NEVER"]:
            notify = frozenset({"NEVER"})
        elif not items or any(v not in NOTIFY_VALUES for v in items) or len(set(items)) != len(
            items
        ):
            raise ParamError("NOTIFY", "expected NEVER or a list of SUCCESS,FAILURE,DELAY")
        else:
            notify = frozenset(items)
    orcpt: tuple[str, str] | None = None
    if "ORCPT" in values:
        raw = values.pop("ORCPT")
        # RFC 3461 §4.2: ORCPT=addr-type ";" xtext
        if raw is None or ";" not in raw:
            raise ParamError("ORCPT", "expected addr-type;xtext, e.g. rfc822;user@example.org")
        addr_type, _, encoded = raw.partition(";")
        if not _ATOM_RE.fullmatch(addr_type):
            raise ParamError("ORCPT", "address type is not an atom")
        if len(raw) > ORCPT_MAX:
            raise ParamError("ORCPT", f"longer than {ORCPT_MAX} characters")
        try:
            address = xtext_decode(encoded)
        except ValueError as exc:
            raise ParamError("ORCPT", str(exc)) from None
        if not address:
            raise ParamError("ORCPT", "empty address")
        orcpt = (addr_type.lower(), address)
    if values:
        name = sorted(values)[0]
        raise ParamError(name, "not recognised or not implemented", code=555, enhanced="5.5.4")
    return RcptParams(notify=notify, orcpt=orcpt)
