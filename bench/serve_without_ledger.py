"""BENCH ONLY: ``mssante serve`` with every proof-ledger write replaced by nothing.

``bench/smtp.py --proofs-overhead`` runs the same load against this and against the real
``mssante serve`` to measure what the ledger costs on the accept path. The switch exists
nowhere in the gateway: no setting, no environment variable, no code path of the installed
package can turn proofs off; only this script, which is not part of the package, replaces
``storage.proofs.append`` and ``append_many`` in its own process before starting the
command line. Never run it for real mail: nothing it accepts is proved.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from storage import proofs  # noqa: E402


async def _no_append(conn: Any, **fields: Any) -> None:
    return None


async def _no_append_many(conn: Any, items: Any) -> list[Any]:
    return []


def main() -> None:
    proofs.append = _no_append  # type: ignore[assignment]
    proofs.append_many = _no_append_many  # type: ignore[assignment]
    from gateway.cli import main as cli_main

    cli_main(args=sys.argv[1:] or ["serve"], prog_name="mssante")


if __name__ == "__main__":
    main()
