"""mail layer (see DESIGN.md)."""
