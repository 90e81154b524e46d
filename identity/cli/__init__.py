"""The ``idgraph`` command: typer command groups over the services, one module per group.

:mod:`identity.cli.main` wires the groups into one app; ``main`` is the console entry point.
"""

from identity.cli.main import main

__all__ = ["main"]
