"""A corpus of unusual messages with the answers the RFCs call for, written by hand.

Each ``tests/imap/corpus/*.case`` file holds one message and what the server must answer
for it: ENVELOPE (RFC 9051 §7.5.2, RFC 3501 §7.4.2: fields as they stand in the header,
encoded words not decoded), BODYSTRUCTURE (with its extension data), some BODY[section]
contents and SEARCH results. The message is stored through the real pipeline (as SMTP
delivery stores it) and fetched over a real TLS connection. Format of a case file::

    # comments: what the case is about and which RFC rule decides
    === message            (lines end with CRLF on the wire; "=== message lf" keeps bare LF)
    ...
    === envelope
    ("date" "subject" …)   (one line)
    === bodystructure
    (…)                    (one line)
    === section 1.2        (exact content of BODY[1.2]; a last line "\\" alone: ends with CRLF)
    …
    === search
    BODY "mot" => 1        (criteria => 1 for a match, 0 for none)

Where a mature server answers otherwise and the case sides with the RFC, its comments say so.
Every response is also checked by the strict grammar of ``imap_grammar`` (tests/imap/conftest.py).

One gateway (store and IMAP server) serves the whole module: starting one per case cost more
than the cases themselves. Each case gets a mailbox of its own, named after the case, so its
message is message 1 there and a SEARCH answer ``1`` means that message and no other.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import pytest_asyncio

from storage import folders as folder_rows
from storage.accounts import get_by_address
from tests.fixtures.imap import ALICE, ImapEnv, start_imap_env
from tests.fixtures.pki import DevPkiBundle
from tests.imap.rfc_wire import Wire

CORPUS = Path(__file__).with_name("corpus")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def corpus_env(tmp_path_factory: pytest.TempPathFactory,
                     dev_pki: DevPkiBundle) -> AsyncIterator[ImapEnv]:
    """One gateway with the IMAP service for every case of the module."""
    env = await start_imap_env(tmp_path_factory.mktemp("corpus") / "data", dev_pki)
    try:
        yield env
    finally:
        await env.gateway.stop(grace=0)


async def _mailbox_of(env: ImapEnv, case: str) -> str:
    """Creates the case's own mailbox (named after the case) in Alice's account."""
    db = env.gateway.db
    assert db is not None
    async with db.begin() as conn:
        account = await get_by_address(conn, ALICE)
        assert account is not None
        await folder_rows.create(conn, account.id, case)
    return case


@dataclass
class Case:
    name: str
    raw: bytes
    envelope: str | None = None
    bodystructure: str | None = None
    sections: dict[str, bytes] = field(default_factory=dict)
    searches: list[tuple[str, bool]] = field(default_factory=list)


def _load(path: Path) -> Case:
    blocks: dict[str, list[str]] = {}
    order: list[str] = []
    current: str | None = None
    for line in path.read_text(encoding="utf-8").split("\n"):
        if line.startswith("=== "):
            current = line[4:].strip()
            blocks[current] = []
            order.append(current)
        elif current is not None:
            blocks[current].append(line)
        elif line and not line.startswith("#"):
            raise ValueError(f"{path.name}: text before the first block: {line!r}")
    case = Case(path.stem, b"")
    for name in order:
        lines = blocks[name]
        while lines and lines[-1] == "":
            lines.pop()
        if name.startswith("message"):
            eol = "\n" if name == "message lf" else "\r\n"
            text = eol.join(lines) + eol
            case.raw = text.encode("utf-8").replace(b"\\0", b"\x00")
        elif name == "envelope":
            case.envelope = " ".join(lines)
        elif name == "bodystructure":
            case.bodystructure = " ".join(lines)
        elif name.startswith("section "):
            text = "\r\n".join(lines)
            if text.endswith("\r\n\\"):  # a last line "\": the content ends with CRLF
                text = text[:-1]
            case.sections[name[8:]] = text.encode("utf-8")
        elif name == "search":
            for line in lines:
                criteria, _, want = line.rpartition("=>")
                case.searches.append((criteria.strip(), want.strip() == "1"))
        else:
            raise ValueError(f"{path.name}: unknown block {name!r}")
    return case


CASES = sorted(CORPUS.glob("*.case"))


def _item(resp: bytes, name: bytes) -> bytes:
    """The parenthesised value of ``name`` in a FETCH response (literals included)."""
    at = resp.index(name + b" (") + len(name) + 1
    depth, i, quoted = 0, at, False
    while True:
        ch = resp[i:i + 1]
        if quoted:
            if ch == b"\\":
                i += 1
            elif ch == b'"':
                quoted = False
        elif ch == b'"':
            quoted = True
        elif ch == b"(":
            depth += 1
        elif ch == b")":
            depth -= 1
            if depth == 0:
                return resp[at:i + 1]
        elif ch == b"{":
            m = re.match(rb"\{(\d+)\}\r\n", resp[i:])
            assert m is not None
            i += m.end() + int(m.group(1)) - 1
        i += 1


def _section(resp: bytes, section: str) -> bytes:
    m = re.search(re.escape(f"BODY[{section}]".encode()) + rb" (?:\{(\d+)\}\r\n|\"|NIL)", resp)
    assert m is not None, resp[:300]
    if m.group(1) is None:
        if resp[m.end() - 1:m.end()] == b'"':
            end = resp.index(b'"', m.end())
            return resp[m.end():end]
        return b"NIL"
    return resp[m.end():m.end() + int(m.group(1))]


def test_corpus_has_its_cases() -> None:
    assert len(CASES) >= 150
    for path in CASES:
        case = _load(path)
        assert case.raw and (case.envelope or case.bodystructure or case.sections
                             or case.searches), path.name


# The cases run in the module's event loop, where the shared gateway runs.
@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
async def test_corpus_case(corpus_env: ImapEnv, path: Path) -> None:
    case = _load(path)
    mailbox = await _mailbox_of(corpus_env, case.name)
    await corpus_env.deliver(case.raw, folder=mailbox)

    def run() -> None:
        w = Wire(corpus_env)
        try:
            check(w)
        finally:
            w.close()  # the server is shared: leave no session behind, even on failure

    def check(w: Wire) -> None:
        status, _ = w.cmd(f'SELECT "{mailbox}"')
        assert status == "OK", w.last_tagged
        items = ["ENVELOPE", "BODYSTRUCTURE"] + [f"BODY.PEEK[{s}]" for s in case.sections]
        status, lines = w.cmd(f"FETCH 1 ({' '.join(items)})")
        assert status == "OK", w.last_tagged
        resp = lines[0]
        if case.envelope is not None:
            assert _item(resp, b"ENVELOPE").decode("utf-8") == case.envelope
        if case.bodystructure is not None:
            assert _item(resp, b"BODYSTRUCTURE").decode("utf-8") == case.bodystructure
        for section, want in case.sections.items():
            assert _section(resp, section) == want, section
        for criteria, match in case.searches:
            status, found = w.cmd(f"SEARCH CHARSET UTF-8 {criteria}".encode())
            assert status == "OK", (criteria, w.last_tagged)
            hits = found[0].split()[2:] if found else []
            assert (hits == [b"1"]) is match, (criteria, found)

    await asyncio.to_thread(run)
