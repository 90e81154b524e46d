"""What every ``idgraph`` command shares: the consoles, the settings, the graph session."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import Progress, ProgressColumn

from identity.config import Settings, load_settings
from identity.store.driver import Graph, open_driver

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


def progress_bar(*columns: ProgressColumn) -> Progress:
    """A progress bar on stderr, shown only on a terminal."""
    return Progress(*columns, console=err, disable=not err.is_terminal)
