"""The sample Grafana dashboard only plots metrics the gateway really exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from config.metrics import INSTRUMENTS

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json"
SCRAPE_TIME = {  # read at scrape time by web/metrics.py
    "mssante_queue_messages", "mssante_queue_oldest_age_seconds", "mssante_proofs_records",
    "mssante_proofs_unsigned_records", "mssante_proofs_last_checkpoint_age_seconds",
    "mssante_mailboxes", "mssante_trustspace_domains", "mssante_trustspace_age_seconds",
    "mssante_tls_expiry_seconds", "mssante_process_resident_memory_bytes",
}


def test_every_plotted_metric_exists() -> None:
    from prometheus_client import generate_latest

    exported = {s.name for f in text_string_to_metric_families(
        generate_latest(INSTRUMENTS).decode()) for s in f.samples} | SCRAPE_TIME
    exported |= {f.name for f in INSTRUMENTS.collect()}
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert exprs
    for expr in exprs:
        for name in re.findall(r"\bmssante_[a-z_]+", expr):
            base = re.sub(r"_(bucket|count|sum|total)$", "", name)
            assert name in exported or base in exported, (name, expr)
