"""Shared fixtures: each plugin module under tests/fixtures owns one real component."""

import pkgutil

import tests.fixtures as _fixtures

pytest_plugins = [
    f"tests.fixtures.{m.name}" for m in pkgutil.iter_modules(_fixtures.__path__)
]
