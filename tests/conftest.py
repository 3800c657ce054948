"""Shared fixtures: each plugin module under tests/fixtures owns one real component."""

import pkgutil

import pytest

import tests.fixtures as _fixtures

# Fixture modules import one another (the gateway fixture uses the PKI one): have their
# asserts rewritten whichever is imported first.
pytest.register_assert_rewrite("tests.fixtures")

pytest_plugins = [
    f"tests.fixtures.{m.name}" for m in pkgutil.iter_modules(_fixtures.__path__)
]
