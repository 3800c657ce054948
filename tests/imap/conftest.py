"""Every byte the IMAP server writes to the clients of the IMAP tests is checked against
the strict grammar (:mod:`tests.imap.imap_grammar`) when the test ends.

The bytes are taken where the real clients read them (imaplib, which imapclient and the
tests' raw :class:`tests.imap.rfc_wire.Wire` build on), so the server runs untouched.
Sessions under COMPRESS=DEFLATE (RFC 4978) are checked too, in clear: their client
(:mod:`tests.imap.deflate_client`) inflates below ``readline``/``read``.
"""

from __future__ import annotations

import imaplib
from collections.abc import Iterator
from typing import Any

import pytest

from tests.imap.imap_grammar import check_stream


@pytest.fixture(autouse=True)
def imap_grammar(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[Any, bytearray]]:
    """Records what the server writes on each client connection, then checks it."""
    streams: dict[Any, bytearray] = {}
    original_readline = imaplib.IMAP4.readline
    original_read = imaplib.IMAP4.read

    def readline(self: imaplib.IMAP4) -> bytes:
        data = original_readline(self)
        streams.setdefault(self, bytearray()).extend(data)
        return data

    def read(self: imaplib.IMAP4, size: int) -> bytes:
        data = original_read(self, size)
        streams.setdefault(self, bytearray()).extend(data)
        return data

    monkeypatch.setattr(imaplib.IMAP4, "readline", readline)
    monkeypatch.setattr(imaplib.IMAP4, "read", read)
    yield streams
    problems = [p for stream in streams.values() for p in check_stream(bytes(stream))]
    assert not problems, "responses that do not follow RFC 9051 §9:\n" + "\n".join(problems)
