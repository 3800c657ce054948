"""smtp layer (see DESIGN.md)."""
