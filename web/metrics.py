"""``GET /metrics``: the gateway's state in the Prometheus text format.

The values an operator alerts on are read when Prometheus scrapes, not kept up to date in
the hot paths: queue depth by state and the age of the oldest waiting message, the proof
ledger's size and the age of its last signed checkpoint (a ledger that stops being signed
is what a tampering would look like), mailboxes by type and status, the trust space's size
and age, and the expiry of every certificate and CRL the gateway relies on. Process
figures (memory, CPU, open files) come from prometheus-client's own collector, and the
counters the protocol code increments (connections, sessions, authentications, messages and
refusals by code, IMAP commands, outbound outcomes and delivery latency) from
``config/metrics.py``.

The reading comes through :class:`MetricsSource`, a narrow interface the composition root
implements, so this module knows nothing of how the gateway is assembled.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from config.metrics import INSTRUMENTS
from storage.stats import StoreStats
from trustspace.expiry import Expiry

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True)
class Reading:
    """Everything one scrape reports (besides the process collector)."""

    store: StoreStats
    trust_domains: int = 0
    trust_loaded_at: datetime | None = None
    expiries: list[Expiry] = field(default_factory=list)
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    instruments: list[Metric] | None = None
    """The protocol counters of every process (several workers, see config.metrics.merge);
    None: this process's own."""


class MetricsSource(Protocol):
    async def read(self) -> Reading: ...


def _age(now: datetime, then: datetime | None) -> float:
    """Seconds since ``then``; NaN when there is nothing (Prometheus shows it as absent)."""
    return (now - then).total_seconds() if then is not None else float("nan")


class _ReadingCollector(Collector):
    """Turns the reading taken just before ``generate_latest`` into metric families."""

    def __init__(self) -> None:
        self.reading: Reading | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        r = self.reading
        if r is None:
            return
        queue = GaugeMetricFamily(
            "mssante_queue_messages", "Outbound queue rows by state", labels=["state"]
        )
        for state in ("queued", "inflight", "deferred", "sent", "bounced"):
            queue.add_metric([state], r.store.queue_by_state.get(state, 0))
        yield queue
        yield GaugeMetricFamily(
            "mssante_queue_oldest_age_seconds",
            "Age of the oldest message still waiting for delivery (0 when none)",
            value=_age(r.now, r.store.oldest_waiting) if r.store.oldest_waiting else 0.0,
        )
        yield GaugeMetricFamily(
            "mssante_proofs_records", "Records in the proof ledger", value=r.store.proofs_total
        )
        yield GaugeMetricFamily(
            "mssante_proofs_unsigned_records",
            "Records appended since the last signed checkpoint",
            value=r.store.proofs_total - r.store.last_checkpoint_seq,
        )
        yield GaugeMetricFamily(
            "mssante_proofs_last_checkpoint_age_seconds",
            "Seconds since the last signed checkpoint of the proof ledger",
            value=_age(r.now, r.store.last_checkpoint_at),
        )
        mailboxes = GaugeMetricFamily(
            "mssante_mailboxes", "Mailboxes by type and status", labels=["type", "status"]
        )
        for (kind, status), count in sorted(r.store.accounts_by_type_status.items()):
            mailboxes.add_metric([kind, status], count)
        yield mailboxes
        yield GaugeMetricFamily(
            "mssante_trustspace_domains", "Domains of the MSSanté trust space in force",
            value=r.trust_domains,
        )
        yield GaugeMetricFamily(
            "mssante_trustspace_age_seconds", "Seconds since the trust space was loaded",
            value=_age(r.now, r.trust_loaded_at),
        )
        expiry = GaugeMetricFamily(
            "mssante_tls_expiry_seconds",
            "Seconds until a certificate or CRL the gateway relies on expires (negative: past)",
            labels=["role", "subject"],
        )
        for item in r.expiries:
            expiry.add_metric([item.role, item.subject],
                              (item.not_after - r.now).total_seconds())
        yield expiry


class _Instruments(Collector):
    """The counters the protocol code increments (``config/metrics.py``), as they are."""

    def __init__(self) -> None:
        self.families: list[Metric] | None = None

    def collect(self) -> Iterator[Metric]:
        if self.families is not None:
            yield from self.families
        else:
            yield from INSTRUMENTS.collect()


class GatewayMetrics:
    """The registry behind ``/metrics``; ``render`` reads the source, then serialises."""

    def __init__(self, source: MetricsSource) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._source = source
        self._reading = _ReadingCollector()
        self.registry.register(self._reading)
        self._instruments = _Instruments()
        self.registry.register(self._instruments)
        ProcessCollector(namespace="mssante", registry=self.registry)

    async def render(self) -> bytes:
        self._reading.reading = reading = await self._source.read()
        self._instruments.families = reading.instruments
        return generate_latest(self.registry)
