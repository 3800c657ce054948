"""Address lists of From/To/Cc/... parsed into the parts IMAP ENVELOPE needs (RFC 5322 §3.4).

An address becomes ``(name, adl, mailbox, host)`` (RFC 3501 §7.4.2). Group syntax gives a start
marker ``(None, None, group name, None)``, the members, and an end marker of four ``None``.

Conventions, chosen to match what deployed IMAP servers (Dovecot) show to clients:

- the display name is the phrase with its words joined by one space; quoted strings are
  unquoted and RFC 2047 encoded words are kept as written (the client decodes them);
- an old-style ``user@host (Full Name)`` address takes the comment as its name;
- a missing local part or domain becomes ``MISSING_MAILBOX`` / ``MISSING_DOMAIN``, because a
  ``NIL`` host would wrongly announce a group to the client.

Parsing is lenient: what cannot be understood is skipped, never raised.
"""

from __future__ import annotations

from dataclasses import dataclass

from mail.mimeheader import read_quoted

MISSING_MAILBOX = "MISSING_MAILBOX"
MISSING_DOMAIN = "MISSING_DOMAIN"

# RFC 5322 §3.2.3 specials (the dot is handled as part of words).
_SPECIALS = frozenset('()<>[]:;@\\,"')
_WS = " \t\r\n"

Address = tuple[str | None, str | None, str | None, str | None]


@dataclass(slots=True)
class _Tok:
    kind: str  # "word", "quoted", "special", "literal"
    text: str
    space_before: bool


def _tokenize(s: str) -> tuple[list[_Tok], dict[int, str]]:
    """Tokens of an address list, and the last comment seen before each token index."""
    toks: list[_Tok] = []
    comments: dict[int, str] = {}
    i = 0
    n = len(s)
    space = False
    while i < n:
        c = s[i]
        if c in _WS:
            space = True
            i += 1
        elif c == "(":
            depth = 0
            buf: list[str] = []
            while i < n:
                c = s[i]
                if c == "\\" and i + 1 < n:
                    buf.append(s[i + 1])
                    i += 2
                    continue
                if c == "(":
                    depth += 1
                    if depth > 1:
                        buf.append(c)
                elif c == ")":
                    depth -= 1
                    if depth == 0:
                        i += 1
                        break
                    buf.append(c)
                else:
                    buf.append(c)
                i += 1
            comments[len(toks)] = " ".join("".join(buf).split())
            space = True
        elif c == '"':
            text, i = read_quoted(s, i)
            toks.append(_Tok("quoted", text, space))
            space = False
        elif c == "[":
            end = s.find("]", i)
            end = n if end < 0 else end + 1
            toks.append(_Tok("literal", s[i:end], space))
            i = end
            space = False
        elif c in _SPECIALS:
            toks.append(_Tok("special", c, space))
            i += 1
            space = False
        else:
            j = i
            while j < n and s[j] not in _SPECIALS and s[j] not in _WS:
                j += 1
            toks.append(_Tok("word", s[i:j], space))
            i = j
            space = False
    return toks, comments


def _phrase(toks: list[_Tok]) -> str | None:
    if not toks:
        return None
    out = [toks[0].text]
    for t in toks[1:]:
        out.append((" " if t.space_before else "") + t.text)
    return "".join(out)


def _is(t: _Tok, ch: str) -> bool:
    return t.kind == "special" and t.text == ch


def _addr_spec(toks: list[_Tok]) -> tuple[str | None, str | None, str | None]:
    """``(adl, mailbox, host)`` from the tokens of an addr-spec, possibly with a route."""
    adl = None
    # RFC 5322 §4.4 obs-route: "@a,@b:" before the addr-spec.
    if toks and _is(toks[0], "@"):
        for k, t in enumerate(toks):
            if _is(t, ":"):
                adl = "".join(x.text for x in toks[:k])
                toks = toks[k + 1 :]
                break
    at = next((k for k, t in enumerate(toks) if _is(t, "@")), None)
    local_toks = toks if at is None else toks[:at]
    domain_toks = [] if at is None else toks[at + 1 :]
    local = "".join(t.text for t in local_toks if t.kind != "special" or t.text == ".")
    domain = "".join(t.text for t in domain_toks if t.kind != "special")
    return adl, local or MISSING_MAILBOX, domain or MISSING_DOMAIN


def _mailbox(toks: list[_Tok], comments: dict[int, str], first: int) -> Address | None:
    """One mailbox (name-addr or addr-spec) from its tokens; ``first`` indexes comments."""
    if not toks:
        return None
    lt = next((k for k, t in enumerate(toks) if _is(t, "<")), None)
    if lt is not None:
        gt = next((k for k in range(lt + 1, len(toks)) if _is(toks[k], ">")), len(toks))
        name = _phrase(toks[:lt])
        inner = toks[lt + 1 : gt]
        if not inner:
            # "<>" (null reverse path) or an empty angle address: nothing to show.
            return None
        adl, mailbox, host = _addr_spec(inner)
        return (name, adl, mailbox, host)
    adl, mailbox, host = _addr_spec(toks)
    name = None
    for k in range(first, first + len(toks) + 1):
        if k in comments and comments[k]:
            name = comments[k]
    return (name, adl, mailbox, host)


def parse_address_list(value: str | None) -> list[Address]:
    """Addresses of an address-list header, with group markers (RFC 3501 §7.4.2)."""
    if value is None:
        return []
    toks, comments = _tokenize(value)
    out: list[Address] = []
    i = 0
    n = len(toks)
    while i < n:
        start = i
        # Collect one element up to a top-level ',' (outside <...>), or a group ':'.
        depth = 0
        group = False
        while i < n:
            t = toks[i]
            if _is(t, "<"):
                depth += 1
            elif _is(t, ">"):
                depth = max(0, depth - 1)
            elif depth == 0 and _is(t, ","):
                break
            elif depth == 0 and _is(t, ":") and not (toks[start].text == "@"):
                group = True
                break
            i += 1
        if group:
            name = _phrase(toks[start:i]) or ""
            out.append((None, None, name, None))
            i += 1
            member_start = i
            depth = 0
            while i <= n:
                member: _Tok | None = toks[i] if i < n else None
                if member is not None and _is(member, "<"):
                    depth += 1
                elif member is not None and _is(member, ">"):
                    depth = max(0, depth - 1)
                elif (member is not None and depth == 0 and _is(member, ":")
                        and not _is(toks[member_start], "@")):
                    # A group inside a group, which RFC 5322 §3.4 does not allow and RFC 3501
                    # §7.4.2 cannot show: its name is dropped and its members are the outer
                    # group's, so that no address is lost or glued to the name.
                    member_start = i + 1
                elif member is None or (depth == 0 and (_is(member, ",") or _is(member, ";"))):
                    addr = _mailbox(toks[member_start:i], comments, member_start)
                    if addr is not None:
                        out.append(addr)
                    member_start = i + 1
                    if member is None or _is(member, ";"):
                        break
                i += 1
            out.append((None, None, None, None))
            i += 1
            continue
        while start < i and _is(toks[start], ";"):
            start += 1  # a ";" with no group to end (the second of "A: B: c@x;;"): no address
        addr = _mailbox(toks[start:i], comments, start)
        if addr is not None:
            out.append(addr)
        i += 1
    return out
