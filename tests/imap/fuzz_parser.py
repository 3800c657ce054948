"""Unbounded fuzz target for the IMAP command parser.

Run: ``.venv/bin/python -m tests.imap.fuzz_parser [seconds]``. Feeds random and
mutated command lines to ``parse_command`` and fails on any exception other
than ``ParseError``. Not collected by pytest (no ``test_`` prefix).
"""

from __future__ import annotations

import random
import sys
import time

from imap.protocol import ParseError, parse_command

SEEDS = [
    b"a1 FETCH 1:* (FLAGS BODY.PEEK[1.2.HEADER.FIELDS (FROM SUBJECT)]<0.2048>)",
    b"a2 UID SEARCH RETURN (MIN MAX) CHARSET UTF-8 OR FROM x (NOT SEEN 2:5) UID $",
    b'a3 LIST (SUBSCRIBED RECURSIVEMATCH) "" ("*" %) RETURN (CHILDREN STATUS (MESSAGES))',
    b'a4 APPEND INBOX (\\Seen) " 7-Feb-1994 21:52:25 -0800" {3}\r\nabc',
    b"a5 UID STORE 1:3 (UNCHANGEDSINCE 5) +FLAGS.SILENT (\\seen foo)",
    b"a6 SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211 (1:3 41:43)))",
    b'a7 ID ("name" "x" "version" NIL)',
    b'a8 SETQUOTA "" (STORAGE 512)',
    b"a9 UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)",
    b"b1 UID SORT RETURN (MIN COUNT) (REVERSE DATE SUBJECT DISPLAYFROM) UTF-8 SINCE 1-Feb-1994",
    b"b2 THREAD REFERENCES US-ASCII OR SUBJECT x (NOT SEEN 2:5)",
]


def mutate(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        op = rng.randrange(4)
        pos = rng.randrange(len(buf) + 1)
        if op == 0 and buf:
            del buf[min(pos, len(buf) - 1)]
        elif op == 1:
            buf.insert(pos, rng.randrange(256))
        elif op == 2 and buf:
            buf[min(pos, len(buf) - 1)] = rng.choice(b' ()[]<>{}"\\*$:,.0123456789+~\r\n')
        else:
            other = rng.choice(SEEDS)
            a = rng.randrange(len(other))
            buf[pos:pos] = other[a : a + rng.randint(1, 20)]
    return bytes(buf)


def main(seconds: float) -> int:
    rng = random.Random(1)
    deadline = time.monotonic() + seconds
    count = 0
    while time.monotonic() < deadline:
        line = mutate(rng, rng.choice(SEEDS))
        try:
            parse_command(line)
            parse_command(line, utf8=True)
        except ParseError:
            pass
        except Exception:
            print(f"CRASH on {line!r}", file=sys.stderr)
            raise
        count += 1
    print(f"RESULT fuzz_parser inputs={count} crashes=0")
    return 0


if __name__ == "__main__":
    sys.exit(main(float(sys.argv[1]) if len(sys.argv) > 1 else 10.0))
