"""Health and readiness through a real uvicorn server on a free loopback port."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from identity.config import Settings
from identity.store.host import free_port
from tests.cli import server_env


def _serve(env: dict[str, str]) -> Iterator[str]:
    import os

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "identity", "serve", "--port", str(port)],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{base}/healthz", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture
def api(neo4j_settings: Settings) -> Iterator[str]:
    yield from _serve(server_env(neo4j_settings))


@pytest.fixture
def api_without_neo4j() -> Iterator[str]:
    yield from _serve({"IDGRAPH_NEO4J_URI": f"bolt://127.0.0.1:{free_port()}"})


@pytest.mark.neo4j
def test_health_and_readiness(api: str) -> None:
    health = httpx.get(f"{api}/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    ready = httpx.get(f"{api}/readyz")
    assert ready.status_code == 200 and ready.json() == {"status": "ready", "neo4j": "ok"}


def test_not_ready_while_neo4j_is_down(api_without_neo4j: str) -> None:
    assert httpx.get(f"{api_without_neo4j}/healthz").status_code == 200
    started = time.monotonic()
    ready = httpx.get(f"{api_without_neo4j}/readyz", timeout=30)
    assert ready.status_code == 503
    assert "unreachable" in ready.json()["neo4j"]
    assert time.monotonic() - started < 10
