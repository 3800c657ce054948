"""Every counter, gauge and histogram of the gateway: names, help and labels in one place.

Like the settings, the metrics are a contract with the operator (dashboards and alerts are
built on their names), so they are declared together rather than where they are counted.
They live in their own registry, :data:`INSTRUMENTS`, which the ``/metrics`` endpoint
(``web/metrics.py``) serialises with the values it reads at scrape time. Labels take values
from small fixed sets (protocol, listener kind, outcome, reply code), never an address or a
message id: a label per client would make the series count grow without bound.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import Metric

INSTRUMENTS = CollectorRegistry(auto_describe=True)

CONNECTIONS = Counter(
    "mssante_connections", "Connections accepted, by protocol and listener",
    ["protocol", "listener"], registry=INSTRUMENTS,
)
SESSIONS = Gauge(
    "mssante_sessions", "Sessions open now, by protocol and listener",
    ["protocol", "listener"], registry=INSTRUMENTS,
)
AUTHENTICATIONS = Counter(
    "mssante_authentications", "Authentication attempts, by protocol, method and outcome",
    ["protocol", "method", "outcome"], registry=INSTRUMENTS,
)
SMTP_MESSAGES = Counter(
    "mssante_smtp_messages", "Messages at the end of DATA/BDAT: accepted (250) or refused, "
    "with the enhanced status code", ["listener", "outcome", "code"], registry=INSTRUMENTS,
)
SMTP_REFUSALS = Counter(
    "mssante_smtp_refusals", "SMTP commands refused by policy, by enhanced status code",
    ["listener", "code"], registry=INSTRUMENTS,
)
IMAP_COMMANDS = Counter(
    "mssante_imap_commands", "IMAP commands by name and tagged result (OK, NO, BAD)",
    ["command", "result"], registry=INSTRUMENTS,
)
OUTBOUND = Counter(
    "mssante_outbound_deliveries", "Delivery attempts to other operators by outcome "
    "(relayed, deferred, bounced)", ["outcome"], registry=INSTRUMENTS,
)
DELIVERY_LATENCY = Histogram(
    "mssante_outbound_delivery_latency_seconds",
    "From acceptance to the other operator's 250, for relayed messages",
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14400, 86400),
    registry=INSTRUMENTS,
)


# -- several processes --------------------------------------------------------------------------
# With ``[gateway] workers`` > 1 the counters are incremented in the worker processes; the
# supervisor asks each for a snapshot when /metrics is scraped and serves their sum.

Snapshot = list[tuple[str, str, str, list[tuple[str, dict[str, str], float]]]]
"""(family name, type, help, samples (name, labels, value)): JSON-ready."""


def snapshot(registry: CollectorRegistry = INSTRUMENTS) -> Snapshot:
    """The values of this process's instruments now."""
    return [
        (family.name, family.type, family.documentation,
         [(s.name, dict(s.labels), float(s.value)) for s in family.samples])
        for family in registry.collect()
    ]


def merge(parts: list[Snapshot]) -> list[Metric]:
    """The families of several processes as one: counts, gauges and histogram buckets add
    up; a ``_created`` time is the earliest one."""
    families: dict[str, tuple[str, str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]] = {}
    for part in parts:
        for name, kind, doc, samples in part:
            _, _, values = families.setdefault(name, (kind, doc, {}))
            for sample, labels, value in samples:
                key = (sample, tuple(sorted(labels.items())))
                if key not in values:
                    values[key] = value
                elif sample.endswith("_created"):
                    values[key] = min(values[key], value)
                else:
                    values[key] += value
    out: list[Metric] = []
    for name, (kind, doc, values) in families.items():
        metric = Metric(name, doc, kind)
        for (sample, pairs), value in values.items():
            metric.add_sample(sample, dict(pairs), value)
        out.append(metric)
    return out
