"""trustspace layer (see DESIGN.md)."""
