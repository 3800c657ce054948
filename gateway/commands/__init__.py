"""Sub-commands of ``mssante``: each module exposes ``command`` (a click command or group).

They are discovered by :func:`gateway.cli.main`, so adding a command is adding a module.
"""
