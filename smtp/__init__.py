"""smtp layer (see docs/architecture.md)."""
