"""The Neo4j a benchmark measures: ``IDGRAPH_NEO4J_URI`` when set (its database is wiped),
otherwise a throwaway local server in a temporary directory, stopped at the end; and what
every benchmark report records: the commit measured and the peak memory."""

from __future__ import annotations

import contextlib
import os
import resource
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from identity.config import load_settings
from identity.store.driver import Graph, open_driver
from identity.store.host import free_port
from identity.store.local_server import LocalServer, ServerConfig

PASSWORD = "benchmark-password"


@contextlib.contextmanager
def benchmark_server(
    workdir: Path, *, heap: str = "2g", pagecache: str = "2g", start_timeout: float = 300.0
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
            yield Graph(driver, settings.neo4j_database), server.uri
        finally:
            driver.close()
    finally:
        server.stop()


def commit_measured() -> str:
    """The commit measured, ``+dirty`` when the working tree differs from it."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--", "identity", "loaders"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10
