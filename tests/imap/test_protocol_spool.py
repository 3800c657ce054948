"""The encrypted spool of large APPEND literals (the reader's use of it: test_protocol_reader)."""

from __future__ import annotations

import os

import pytest
from cryptography.exceptions import InvalidTag

from imap.protocol import SpooledLiteral
from imap.protocol.spool import SEGMENT

MARKER = b"Jean DUPONT ne le 01/02/1960 "


def _fill(spool: SpooledLiteral, data: bytes, piece: int = 7000) -> None:
    for i in range(0, len(data), piece):
        spool.write(data[i : i + piece])
    spool.finish()


@pytest.mark.parametrize("size", [0, 1, SEGMENT - 1, SEGMENT, SEGMENT + 1, 5 * SEGMENT + 17])
def test_round_trip_of_every_size(size: int) -> None:
    data = os.urandom(size)
    spool = SpooledLiteral()
    _fill(spool, data)
    assert len(spool) == size and spool.read() == data
    spool.close()


def test_file_is_unlinked_and_holds_no_plaintext() -> None:
    data = MARKER * 20000
    spool = SpooledLiteral()
    _fill(spool, data)
    fd = spool._file.fileno()
    assert os.readlink(f"/proc/self/fd/{fd}").endswith("(deleted)")  # no name on disk
    assert os.stat(fd).st_mode & 0o077 == 0
    on_disk = os.pread(fd, len(data) + 4096, 0)
    assert len(on_disk) > len(data) and MARKER not in on_disk
    spool.close()


def test_altered_or_cut_spool_is_never_returned() -> None:
    data = MARKER * 10000
    spool = SpooledLiteral()
    _fill(spool, data)
    fd = spool._file.fileno()
    byte = os.pread(fd, 1, 1000)
    os.pwrite(fd, bytes([byte[0] ^ 1]), 1000)
    with pytest.raises(InvalidTag):
        spool.read()
    spool.close()


def test_nul_is_noticed_for_the_literal8_rule() -> None:
    spool = SpooledLiteral()
    _fill(spool, b"a" * 100000 + b"\x00" + b"b")
    assert spool.has_nul
    spool.close()
