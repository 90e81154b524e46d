"""Running the ``idgraph`` command as a real process, against the test session's Neo4j."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from identity.config import Settings


def idgraph(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "identity", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {}), "COLUMNS": "200"},
        timeout=timeout,
        check=False,
    )


def server_env(settings: Settings) -> dict[str, str]:
    """The environment that points a command at the test session's Neo4j."""
    return {
        "IDGRAPH_NEO4J_URI": settings.neo4j_uri or "",
        "IDGRAPH_NEO4J_USER": settings.neo4j_user,
        "IDGRAPH_NEO4J_PASSWORD": settings.neo4j_password.get_secret_value(),
        "IDGRAPH_NEO4J_DATABASE": settings.neo4j_database,
    }


def cli_env(settings: Settings, tmp_path: Path, **extra: str) -> dict[str, str]:
    """:func:`server_env` with the test's rejects directory, and ``extra`` variables."""
    return {**server_env(settings), "IDGRAPH_REJECTS_DIR": str(tmp_path / "rejects"), **extra}


def ok(*args: str, env: dict[str, str]) -> str:
    """Run ``idgraph args``; it must exit 0; its standard output."""
    result = idgraph(*args, env=env)
    assert result.returncode == 0, result.stderr + result.stdout
    return result.stdout
