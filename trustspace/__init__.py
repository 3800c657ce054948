"""trustspace layer (see docs/architecture.md)."""
