"""Directory benchmark: import of a generated extract, then Thunderbird-style searches.

    .venv/bin/python bench/directory.py --rows 1000000 --searches 2000

Prints ``RESULT entries=… import_s=… rows_per_s=… search_p50_ms=… search_p99_ms=…``.
Searches bind as a published user over LDAPS, as an address book would; every fourth
nominative row has an accented given name, and the searched fragments are typed without
accents (found through the accent-free copies, directory_ldap/folding.py). The reference measured
in the same run is an equality search on ``mail`` (``ref_eq_p99_ms``), so the substring cost
reads as a ratio on any machine.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argon2  # noqa: E402
import ldap  # noqa: E402

from directory_ldap import DirectoryEntry  # noqa: E402
from directory_ldap.folding import strip_accents  # noqa: E402
from directory_ldap.importer import import_extract  # noqa: E402
from directory_ldap.layout import local_dn  # noqa: E402
from directory_ldap.sample_extract import (  # noqa: E402
    ACCENTED_GIVEN,
    GIVEN,
    SURNAMES,
    write_sample,
)
from directory_ldap.service import Directory  # noqa: E402
from tests.fixtures.slapd import directory_settings  # noqa: E402


def _timed(conn: ldap.ldapobject.LDAPObject, base: str, flt: str) -> float:
    t = time.perf_counter()
    try:  # address books ask for at most 100 entries; reaching that limit is normal
        conn.search_ext_s(base, ldap.SCOPE_SUBTREE, flt, ["cn", "mail", "o", "l"], sizelimit=100)
    except ldap.SIZELIMIT_EXCEEDED:
        pass
    return (time.perf_counter() - t) * 1000


async def main(rows: int, searches: int, workers: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="mssante-bench-"))
    directory = Directory(directory_settings(tmp), workers=workers)
    await directory.start()
    try:
        extract = tmp / "extract.txt"
        write_sample(extract, rows, accents=True)
        t0 = time.perf_counter()
        summary = await import_extract(directory, extract)
        import_s = time.perf_counter() - t0
        print(f"imported {summary.rows} rows in {import_s:.1f}s", file=sys.stderr, flush=True)
        pw = "bench-password"
        await directory.publish(DirectoryEntry(
            address="bench@mssante.test", surname="Bench",
            password_hashes=(argon2.PasswordHasher().hash(pw),)))
        assert directory.layout is not None
        conn = ldap.initialize(directory.layout.ldaps_url)
        conn.set_option(ldap.OPT_X_TLS_CACERTFILE, str(directory.settings.tls_anchor_files[0]))
        conn.set_option(ldap.OPT_X_TLS_NEWCTX, 0)
        conn.simple_bind_s(local_dn(directory.base_dn, "bench@mssante.test", "PER"), pw)
        # What users type: fragments without accents, also of accented names ("eti" for
        # Étienne: found through the accent-free copies, mssanteFoldedCn…).
        words = ([w.lower()[:4] for w in SURNAMES] + [g.lower()[:3] for g in GIVEN]
                 + [strip_accents(g).lower()[:4] for g in ACCENTED_GIVEN])
        sub, ref = [], []
        for i in range(searches):
            w = words[i % len(words)]
            sub.append(_timed(conn, directory.base_dn,
                              f"(|(cn=*{w}*)(mail=*{w}*)(sn=*{w}*)(givenName=*{w}*))"))
            ref.append(_timed(conn, directory.base_dn, "(mail=bench@mssante.test)"))
        sub.sort()
        ref.sort()

        def p(v: list[float], q: float) -> float:
            return v[min(len(v) - 1, int(q * len(v)))]

        print(
            f"RESULT entries={summary.rows} import_s={import_s:.1f} "
            f"rows_per_s={summary.rows / import_s:.0f} "
            f"search_p50_ms={statistics.median(sub):.2f} search_p99_ms={p(sub, 0.99):.2f} "
            f"ref_eq_p99_ms={p(ref, 0.99):.2f} ratio_p99={p(sub, 0.99) / p(ref, 0.99):.1f}"
        )
        conn.unbind_s()
    finally:
        await directory.stop()
        shutil.rmtree(tmp, ignore_errors=True)  # a million entries: several GB of MDB


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--searches", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=4)
    a = ap.parse_args()
    asyncio.run(main(a.rows, a.searches, a.workers))
