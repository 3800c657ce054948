"""The webmail: folders, message list and reading (and the writing side's pages), behind the
portal's sign-in, in French, server-rendered and usable without JavaScript.

Every module of this package that defines ``routes(webmail: Webmail) -> list[BaseRoute]`` is
served: a new page module needs no line anywhere else.
"""

from __future__ import annotations

import importlib
import pkgutil

from starlette.routing import BaseRoute

from web.webmail.base import Webmail, WebmailDeps


def routes(deps: WebmailDeps) -> list[BaseRoute]:
    """The routes of every page module of the package, in module name order."""
    webmail = Webmail(deps)
    out: list[BaseRoute] = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        make = getattr(module, "routes", None)
        if callable(make):
            out.extend(make(webmail))
    return out


__all__ = ["Webmail", "WebmailDeps", "routes"]
