"""The Neo4j a benchmark measures: ``IDGRAPH_NEO4J_URI`` when set (its database is wiped),
otherwise a throwaway local server in a temporary directory, stopped at the end."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from identity.config import load_settings
from identity.store.driver import Graph, open_driver
from identity.store.host import free_port
from identity.store.local_server import LocalServer, ServerConfig

PASSWORD = "benchmark-password"


@contextlib.contextmanager
def benchmark_server(
    workdir: Path, *, heap: str = "auto", pagecache: str = "auto", start_timeout: float = 300.0
) -> Iterator[tuple[Graph, str]]:
    """A graph to measure against and its URI."""
    if os.environ.get("IDGRAPH_NEO4J_URI"):
        settings = load_settings()
        driver = open_driver(settings)
        try:
            yield Graph(driver, settings.neo4j_database), settings.neo4j_uri or ""
        finally:
            driver.close()
        return
    with throwaway_server(workdir, heap=heap, pagecache=pagecache, start_timeout=start_timeout) as (
        graph,
        server,
    ):
        yield graph, server.uri


@contextlib.contextmanager
def throwaway_server(
    workdir: Path, *, heap: str = "auto", pagecache: str = "auto", start_timeout: float = 300.0
) -> Iterator[tuple[Graph, LocalServer]]:
    """A local server of its own in ``workdir`` (what a backfill needs: it stops and starts
    it), sized as ``idgraph neo4j start`` sizes one by default, and a graph on it."""
    base = load_settings()
    server = LocalServer(
        ServerConfig(
            home=workdir / "neo4j",
            cache=base.neo4j_cache,
            version=base.neo4j_version,
            bolt_port=free_port(),
            password=PASSWORD,
            heap=heap,
            pagecache=pagecache,
            start_timeout=start_timeout,
        )
    )
    server.start()
    try:
        settings = load_settings(neo4j_uri=server.uri, neo4j_password=PASSWORD)
        driver = open_driver(settings)
        try:
            yield Graph(driver, settings.neo4j_database), server
        finally:
            driver.close()
    finally:
        server.stop()


def neo4j_env(uri: str) -> dict[str, str]:
    """What points another process (a server, a command) at the benchmark's Neo4j."""
    given = bool(os.environ.get("IDGRAPH_NEO4J_URI"))
    s = load_settings() if given else load_settings(neo4j_uri=uri, neo4j_password=PASSWORD)
    return {
        "IDGRAPH_NEO4J_URI": uri,
        "IDGRAPH_NEO4J_USER": s.neo4j_user,
        "IDGRAPH_NEO4J_PASSWORD": s.neo4j_password.get_secret_value(),
        "IDGRAPH_NEO4J_DATABASE": s.neo4j_database,
    }
