"""accounts layer (see DESIGN.md)."""
