"""Shared fixtures: each plugin module under tests/fixtures owns one real component."""

import pkgutil

import tests.fixtures as _fixtures

# Fixtures that compose others (a whole gateway) load after the ones they import, so that
# pytest registers each module before it is imported elsewhere.
_COMPOSITE = ("gateway", "imap", "haproxy")
_names = sorted(m.name for m in pkgutil.iter_modules(_fixtures.__path__))
pytest_plugins = [f"tests.fixtures.{n}" for n in
                  sorted(_names, key=lambda n: _COMPOSITE.index(n) + 1 if n in _COMPOSITE else 0)]
