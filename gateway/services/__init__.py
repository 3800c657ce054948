"""Service builders: each module here exposes ``ORDER: int`` and ``build(gateway)``.

``build`` returns a :class:`gateway.service.Service` (or None when the configuration turns
the service off). The runtime starts them in ``ORDER`` and stops them in reverse, so adding
a service is adding a module.

``ROLE`` says where a service runs when ``[gateway] workers`` > 1 (gateway/supervisor.py):
``"sessions"`` (SMTP, IMAP) in every worker process, ``"background"`` (jobs, directory,
portal) once, in the supervisor. With one process every service runs there.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

_modules: list[Any] = [
    importlib.import_module(f"{__name__}.{info.name}") for info in pkgutil.iter_modules(__path__)
]
_ordered = sorted((m for m in _modules if hasattr(m, "build")), key=lambda m: m.ORDER)
BUILDERS = [m.build for m in _ordered]
ROLES = {m.build: m.ROLE for m in _ordered}
