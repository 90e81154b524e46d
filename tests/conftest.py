"""Shared fixtures: one real Neo4j per test session, wiped before each test that uses it.

When ``IDGRAPH_NEO4J_URI`` is set, tests use that server (with ``IDGRAPH_NEO4J_USER`` and
``IDGRAPH_NEO4J_PASSWORD``); otherwise they start a throwaway server through the same
launcher as ``idgraph neo4j start``, in a temporary home on a free port.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from neo4j import Driver

from identity.config import Settings, load_settings
from identity.store.driver import Graph, open_driver
from identity.store.host import free_port
from identity.store.local_server import LocalServer, ServerConfig

TEST_PASSWORD = "idgraph-test-password"


def throwaway_config(home: Path, **overrides: object) -> ServerConfig:
    """A server config for a test: its own home, a free port, the shared jar cache."""
    base = load_settings()
    values: dict[str, object] = {
        "home": home,
        "cache": base.neo4j_cache,
        "version": base.neo4j_version,
        "bolt_port": free_port(),
        "password": TEST_PASSWORD,
        "heap": "512m",
        "pagecache": "128m",
    }
    values.update(overrides)
    return ServerConfig(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def neo4j_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    if os.environ.get("IDGRAPH_NEO4J_URI"):
        yield load_settings()
        return
    server = LocalServer(throwaway_config(tmp_path_factory.mktemp("neo4j-session")))
    server.start()
    try:
        yield load_settings(neo4j_uri=server.uri, neo4j_password=TEST_PASSWORD)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def neo4j_driver(neo4j_settings: Settings) -> Iterator[Driver]:
    driver = open_driver(neo4j_settings)
    yield driver
    driver.close()


@pytest.fixture
def graph(neo4j_driver: Driver, neo4j_settings: Settings) -> Graph:
    """The session's database, emptied of nodes and relationships before the test."""
    g = Graph(neo4j_driver, neo4j_settings.neo4j_database)
    g.wipe()
    return g


@pytest.fixture(scope="module")
def api(neo4j_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``idgraph serve`` on the session's Neo4j for the module's tests (the database is
    still wiped per test by ``graph``); its JSON logs go to ``<tmp>/server.log``."""
    from tests.api_server import serve, server_env

    log = tmp_path_factory.mktemp("api") / "server.log"
    with serve(server_env(neo4j_settings), log) as base:
        yield base
