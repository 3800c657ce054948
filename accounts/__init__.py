"""accounts layer (see docs/architecture.md)."""
