"""The outbound relay worker as a gateway service (no listener: it only sends).

It starts after the SMTP listeners (``ORDER = 30``) and stops before them; its
``stop(grace)`` lets deliveries in progress finish and gives the other rows back to the
queue, so another node or the next start picks them up at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.node import node_name
from smtp.outbound import OutboundWorker

if TYPE_CHECKING:
    from gateway.runtime import Gateway

ROLE = "background"  # the supervisor runs it once (gateway/supervisor.py)
ORDER = 30


def build(gateway: Gateway) -> OutboundWorker | None:
    """The worker, trusting the gateway's live trust space (refreshes apply at once)."""
    if gateway.db is None or gateway.pipeline is None:
        return None
    trust = gateway.trust

    def in_trust_space(domain: str) -> bool:
        return trust is not None and trust.current.contains(domain)

    worker = OutboundWorker(gateway.db, gateway.settings, gateway.pipeline, trust=in_trust_space,
                            worker_id=node_name(gateway.settings.data_dir))
    worker.revocation = gateway.revocation
    gateway.pipeline.on_queued(worker.wake)
    return worker
