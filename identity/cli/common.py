"""What every ``idgraph`` command shares: the consoles, the settings, the services."""

from __future__ import annotations

import getpass
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import Progress, ProgressColumn

from identity.config import Settings, load_settings
from identity.context import ServiceContext
from identity.policy import load_policy
from identity.store.driver import Graph, open_driver
from identity.store.schema import init_schema

out = Console()
err = Console(stderr=True)


def cli_settings() -> Settings:
    return load_settings()


@contextmanager
def graph_session(settings: Settings) -> Iterator[Graph]:
    driver = open_driver(settings)
    try:
        yield Graph(driver, settings.neo4j_database)
    finally:
        driver.close()


@contextmanager
def services(*, actor: str | None = None, schema: bool = False) -> Iterator[ServiceContext]:
    """The services of one command: settings and policy read, the driver open for its
    duration; ``schema`` applies pending migrations first; ``actor`` as in ServiceContext."""
    settings = cli_settings()
    policy = load_policy(settings.policy)
    with graph_session(settings) as graph:
        if schema:
            init_schema(graph)
        yield ServiceContext.create(graph, settings, policy, actor=actor)


def cli_actor() -> str:
    """Who acts from a terminal, as recorded: ``cli:<os user>``."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no login name in the environment nor the password database
        user = str(os.getuid())
    return f"cli:{user}"


def progress_bar(*columns: ProgressColumn) -> Progress:
    """A progress bar on stderr, shown only on a terminal."""
    return Progress(*columns, console=err, disable=not err.is_terminal)


class _DriverLog(logging.Handler):
    """The Neo4j driver's log records on the error console, in idgraph's words."""

    def emit(self, record: logging.LogRecord) -> None:
        message = f"debug: neo4j driver: {record.getMessage()}"
        err.print(message, markup=False, highlight=False, soft_wrap=True)


def route_driver_logs(debug: bool) -> None:
    """The driver logs what it retries (deadlocks between concurrent writers) and what it
    gives up on (a connection Neo4j dropped); every failure that matters reaches the user as
    idgraph's own message naming the operation. So its records go through idgraph's console
    only with ``IDGRAPH_LOG_LEVEL=DEBUG``, and nowhere else (not Python's last-resort
    handler, which printed them raw before idgraph's message)."""
    driver = logging.getLogger("neo4j")
    driver.handlers[:] = [_DriverLog()] if debug else [logging.NullHandler()]
    driver.setLevel(logging.DEBUG if debug else logging.CRITICAL)
    driver.propagate = False
