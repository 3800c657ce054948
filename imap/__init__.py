"""imap layer (see docs/architecture.md)."""
