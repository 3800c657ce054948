"""Service builders: each module here exposes ``ORDER: int`` and ``build(gateway)``.

``build`` returns a :class:`gateway.service.Service` (or None when the configuration turns
the service off). The runtime starts them in ``ORDER`` and stops them in reverse, so adding
a service is adding a module.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

_modules: list[Any] = [
    importlib.import_module(f"{__name__}.{info.name}") for info in pkgutil.iter_modules(__path__)
]
BUILDERS = [m.build for m in sorted(_modules, key=lambda m: m.ORDER) if hasattr(m, "build")]
