"""The ``idgraph`` command, run as a real process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from identity.config import Settings


def idgraph(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "identity", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {}), "COLUMNS": "200"},
        timeout=120,
        check=False,
    )


def _server_env(settings: Settings) -> dict[str, str]:
    return {
        "IDGRAPH_NEO4J_URI": settings.neo4j_uri or "",
        "IDGRAPH_NEO4J_USER": settings.neo4j_user,
        "IDGRAPH_NEO4J_PASSWORD": settings.neo4j_password.get_secret_value(),
        "IDGRAPH_NEO4J_DATABASE": settings.neo4j_database,
    }


def test_bad_setting_is_one_line_naming_it() -> None:
    result = idgraph("db", "status", env={"IDGRAPH_NEO4J_URI": "http://nope"})
    assert result.returncode == 1
    assert result.stderr.startswith("error: invalid settings: IDGRAPH_NEO4J_URI")
    assert "Traceback" not in result.stderr


def test_status_of_a_server_never_started(tmp_path: Path) -> None:
    result = idgraph("neo4j", "status", env={"IDGRAPH_STATE_DIR": str(tmp_path)})
    assert result.returncode == 3
    assert "stopped" in result.stdout
    assert str(tmp_path / "neo4j" / "data") in result.stdout


def test_stop_when_not_running(tmp_path: Path) -> None:
    result = idgraph("neo4j", "stop", env={"IDGRAPH_STATE_DIR": str(tmp_path)})
    assert result.returncode == 0
    assert "Not running." in result.stdout


def test_db_commands_without_any_server(tmp_path: Path) -> None:
    env = {"IDGRAPH_STATE_DIR": str(tmp_path), "IDGRAPH_NEO4J_URI": ""}
    result = idgraph("db", "init", env=env)
    assert result.returncode == 1
    assert "run `idgraph neo4j start`" in result.stderr


@pytest.mark.neo4j
def test_db_init_and_status(neo4j_settings: Settings, graph: object) -> None:
    env = _server_env(neo4j_settings)
    first = idgraph("db", "init", env=env)
    assert first.returncode == 0, first.stderr
    assert "applied migration 1" in first.stdout
    second = idgraph("db", "init", env=env)
    assert second.returncode == 0 and "applied" not in second.stdout
    status = idgraph("db", "status", env=env)
    assert "up to date" in status.stdout
