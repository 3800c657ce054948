"""``mssante init`` (defined beside ``serve``, which shares its start-up steps)."""

from gateway.commands.serve import init as command

__all__ = ["command"]
