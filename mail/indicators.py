"""Monthly indicators an operator reports to the trust-space manager.

``mssante indicators --month 2026-11`` reads them from what the gateway keeps anyway: the
accounts (active mailboxes by type), the proof ledger (messages submitted, relayed to other
operators, received from them, delivered; DSNs and MDNs sent and received; the median time
from acceptance to delivery or relay), the session traces (successful authentications by
protocol and method — the connections that opened a session) and the accept path's monthly
counter of ``X-MSS-CODECDA`` codes (:mod:`storage.monthly`). Nothing about a person or a
message's content: counts only.

Months are UTC calendar months. Each indicator is one row (indicator, dimension, value).
"""

from __future__ import annotations

import json
import re
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from storage import monthly
from storage.database import Database
from storage.schema import ACCOUNT_TYPES, accounts, proofs, traces

_MONTH = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")
ACCEPTED = ("submitted", "received")
ARRIVED = ("delivered", "relayed")
REPORTS = ("dsn-sent", "dsn-received", "mdn-sent", "mdn-received")
# A message accepted at the end of a month may be delivered or relayed just after it.
SPILL = timedelta(days=7)


@dataclass(frozen=True)
class Row:
    indicator: str
    dimension: str
    value: int | float


def month_range(text: str) -> tuple[datetime, datetime]:
    """[start, end) of the UTC month ``YYYY-MM``; ValueError naming a bad value."""
    found = _MONTH.fullmatch(text.strip())
    if found is None:
        raise ValueError(f"month {text!r} is not a month written YYYY-MM (e.g. 2026-11)")
    year, month = int(found.group(1)), int(found.group(2))
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=UTC)
    return start, end


async def compute(db: Database, month: str) -> list[Row]:
    """Every indicator of ``month`` (YYYY-MM)."""
    start, end = month_range(month)
    rows: list[Row] = []
    async with db.read() as conn:
        by_type: dict[str, int] = dict((await conn.execute(
            select(accounts.c.type, func.count()).where(
                accounts.c.status == "active", accounts.c.created_at < end)
            .group_by(accounts.c.type))).all())
        rows += [Row("active_mailboxes", t, int(by_type.get(t, 0))) for t in ACCOUNT_TYPES]

        events = (await conn.execute(
            select(proofs.c.kind, proofs.c.message_ref, proofs.c.created_at)
            .where(proofs.c.created_at >= start, proofs.c.created_at < end + SPILL,
                   proofs.c.kind.in_((*ACCEPTED, *ARRIVED, *REPORTS)))
            .order_by(proofs.c.seq))).all()
        rows += _messages(events, start, end)

        auth = Counter[tuple[str, str]]()
        for service, detail in (await conn.execute(
                select(traces.c.service, traces.c.detail)
                .where(traces.c.created_at >= start, traces.c.created_at < end,
                       traces.c.event == "auth_success"))).all():
            facts: Any = json.loads(detail) if isinstance(detail, str) else detail
            method = str((facts or {}).get("method") or "unknown")
            auth[(str(service), method)] += 1
        rows += [Row("connections", f"{s}/{m}", n) for (s, m), n in sorted(auth.items())]

        codes = await monthly.read(conn, month, "codecda")
        rows += [Row("messages_codecda", code, n) for code, n in sorted(codes.items())]
    return rows


def _messages(events: Sequence[Any], start: datetime, end: datetime) -> list[Row]:
    """Counts of the month's message proofs, and the median delivery time."""
    in_month = [e for e in events if e.created_at < end]
    kinds = Counter(e.kind for e in in_month)
    rows = [
        Row("messages_sent", "submitted_by_users", kinds["submitted"]),
        Row("messages_sent", "relayed_to_operators", kinds["relayed"]),
        Row("messages_received", "from_operators", kinds["received"]),
        Row("messages_received", "delivered_to_mailboxes", kinds["delivered"]),
        *(Row("reports", kind, kinds[kind]) for kind in REPORTS),
    ]
    accepted: dict[str, datetime] = {}
    arrived: dict[str, datetime] = {}
    for e in events:
        if not e.message_ref:
            continue
        if e.kind in ACCEPTED and start <= e.created_at < end:
            accepted.setdefault(e.message_ref, e.created_at)
        elif e.kind in ARRIVED:
            arrived.setdefault(e.message_ref, e.created_at)
    delays = [(arrived[ref] - at).total_seconds() for ref, at in accepted.items()
              if ref in arrived and arrived[ref] >= at]
    rows.append(Row("median_delivery_seconds", "accepted_to_delivered_or_relayed",
                    round(statistics.median(delays), 3) if delays else 0))
    rows.append(Row("median_delivery_seconds", "messages_measured", len(delays)))
    return rows


def to_csv(month: str, rows: list[Row]) -> str:
    """``month,indicator,dimension,value`` lines with a header line."""
    lines = ["month,indicator,dimension,value"]
    lines += [f"{month},{r.indicator},{r.dimension},{r.value}" for r in rows]
    return "\n".join(lines) + "\n"
