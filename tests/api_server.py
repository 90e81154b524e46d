"""A real ``idgraph serve`` (uvicorn) on a free loopback port, for end-to-end API tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from identity.config import Settings
from identity.store.host import free_port
from tests import cli

KEYS = {
    "reader-key-0001": "reader",
    "steward-key-0001": {"role": "steward", "name": "steward-alice"},
    "marketer-key-0001": "marketer",
    "admin-key-0001": {"role": "admin", "name": "admin-bob"},
}
READER, STEWARD, MARKETER, ADMIN = (
    "reader-key-0001",
    "steward-key-0001",
    "marketer-key-0001",
    "admin-key-0001",
)
WRITE_KEYS = {"write-key-web-0001": "web", "write-key-app-0001": "app"}
WRITE_KEY = "write-key-web-0001"


def server_env(settings: Settings) -> dict[str, str]:
    """The environment that points a server at the test session's Neo4j, with test keys."""
    return {
        **cli.server_env(settings),
        "IDGRAPH_API_KEYS": json.dumps(KEYS),
        "IDGRAPH_WRITE_KEYS": json.dumps(WRITE_KEYS),
        "IDGRAPH_LOG_JSON": "true",
    }


@contextmanager
def serving(
    env: dict[str, str], log: Path | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Run ``idgraph serve`` with ``env`` added; yield its base URL once /healthz answers,
    and its process (a test may kill it). Its stderr (the logs) goes to ``log`` when given."""
    port = free_port()
    sink = log.open("ab") if log else subprocess.DEVNULL
    process = subprocess.Popen(
        [sys.executable, "-m", "identity", "serve", "--port", str(port)],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=sink,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"idgraph serve exited with {process.returncode}")
            try:
                httpx.get(f"{base}/healthz", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield base, process
    finally:
        if process.poll() is None:
            process.terminate()
        process.wait(timeout=30)
        if log:
            sink.close()  # type: ignore[union-attr]


@contextmanager
def serve(env: dict[str, str], log: Path | None = None) -> Iterator[str]:
    """:func:`serving`, yielding the base URL only."""
    with serving(env, log) as (base, _):
        yield base


def gql(
    base: str, query: str, variables: dict[str, Any] | None = None, key: str | None = READER
) -> dict[str, Any]:
    """POST one GraphQL operation; the whole response body (data and errors)."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    response = httpx.post(
        f"{base}/graphql",
        json={"query": query, "variables": variables or {}},
        headers=headers,
        timeout=60,
    )
    body: dict[str, Any] = response.json()
    body["_status"] = response.status_code
    return body


def data(base: str, query: str, key: str | None = READER, **variables: Any) -> dict[str, Any]:
    """POST one GraphQL operation that must succeed; its data."""
    body = gql(base, query, variables, key)
    assert not body.get("errors"), body["errors"]
    return dict(body["data"])
