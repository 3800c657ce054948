"""imap layer (see DESIGN.md)."""
