"""This node's name among the nodes sharing one database: stable across restarts.

The outbound queue marks the rows a node is delivering with the node's name. A name that
changed at every start (a process id) would leave the rows of a killed node to wait for
their lease to lapse even after it restarted; a name per data directory lets the restarted
node take its rows back at once (:meth:`smtp.outbound.OutboundWorker.start`). The name is
the host name and a random suffix kept in ``<data dir>/node-id``, so two nodes never share
one, even with the same host name and data directory path (containers).
"""

from __future__ import annotations

import os
import secrets
import socket
from pathlib import Path

FILE = "node-id"


def node_name(data_dir: Path) -> str:
    """The node's name, made and kept at the first call (file mode 0600)."""
    path = data_dir / FILE
    try:
        name = path.read_text(encoding="ascii").strip()
        if name:
            return name
    except FileNotFoundError:
        pass
    name = f"{socket.gethostname()}-{secrets.token_hex(6)}"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # made by another process of this node a moment ago
        return path.read_text(encoding="ascii").strip()
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(name + "\n")
    return name
