"""mail layer (see docs/architecture.md)."""
