"""The ``idgraph`` command, run as a real process."""

from __future__ import annotations

from pathlib import Path

import pytest

from identity.config import Settings
from tests.cli import idgraph, server_env


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
    env = server_env(neo4j_settings)
    first = idgraph("db", "init", env=env)
    assert first.returncode == 0, first.stderr
    assert "applied migration 1" in first.stdout
    second = idgraph("db", "init", env=env)
    assert second.returncode == 0 and "applied" not in second.stdout
    status = idgraph("db", "status", env=env)
    assert "up to date" in status.stdout
