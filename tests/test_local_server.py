"""The launcher: error paths need no server; the restart test starts its own."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest
from neo4j import GraphDatabase

from identity.errors import LocalServerError
from identity.store.host import check_java, java_major_version
from identity.store.local_server import LocalServer
from tests.conftest import TEST_PASSWORD, throwaway_config


def _fake_tool(directory: Path, name: str, script: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def test_java_version_is_read_from_the_real_java() -> None:
    assert java_major_version(check_java()) >= 17


def test_missing_java_says_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(LocalServerError, match="Java 17\\+ not found: install openjdk-17"):
        check_java()


def test_old_java_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _fake_tool(tmp_path / "bin", "java", "echo 'openjdk version \"1.8.0_392\"' >&2\n")
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    with pytest.raises(LocalServerError, match="Java 17\\+ required, found Java 8"):
        check_java()


def test_missing_maven_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    server = LocalServer(throwaway_config(tmp_path / "home", cache=tmp_path / "empty-cache"))
    monkeypatch.setenv("PATH", str(tmp_path / "nothing-here"))
    with pytest.raises(LocalServerError, match="Maven not found: install maven"):
        server.fetch()


def test_unreachable_maven_central_is_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Maven itself is replaced by a script printing what Maven prints when the network is down.
    tools = tmp_path / "tools"
    _fake_tool(
        tools,
        "mvn",
        "echo '[ERROR] Failed to execute goal on project idgraph-neo4j-runtime: Could not "
        "resolve dependencies: Could not transfer artifact org.neo4j:neo4j:pom:5.26.30: "
        "Unknown host'\nexit 1\n",
    )
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{os.environ['PATH']}")
    server = LocalServer(throwaway_config(tmp_path / "home", cache=tmp_path / "empty-cache"))
    with pytest.raises(LocalServerError) as info:
        server.fetch()
    message = str(info.value)
    assert "could not download Neo4j" in message and "Maven Central" in message
    assert "Could not transfer artifact" in message
    assert not server.is_fetched()


def test_port_taken_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        server = LocalServer(throwaway_config(tmp_path, bolt_port=port))
        with pytest.raises(LocalServerError, match=f"port {port} on 127.0.0.1 is already in use"):
            server.start()
    assert not server.status().running


@pytest.mark.slow
def test_start_timeout_reports_the_log_and_leaves_nothing_running(tmp_path: Path) -> None:
    server = LocalServer(throwaway_config(tmp_path, start_timeout=1.0))
    with pytest.raises(LocalServerError, match=r"did not answer on bolt://127.0.0.1:.* within 1s"):
        server.start()
    assert not server.status().running


@pytest.mark.slow
def test_restart_keeps_data_and_a_wrong_password_is_named(tmp_path: Path) -> None:
    config = throwaway_config(tmp_path)
    server = LocalServer(config)
    status = server.start()
    try:
        assert status.running and status.version == config.version
        assert server.start().pid == status.pid, "a second start must reuse the running server"
        with GraphDatabase.driver(server.uri, auth=("neo4j", TEST_PASSWORD)) as driver:
            driver.execute_query("CREATE (:Probe {value: 42})")
    finally:
        assert server.stop()
    assert not server.status().running
    assert server.stop() is False

    again = LocalServer(config)
    again.start()
    try:
        with GraphDatabase.driver(again.uri, auth=("neo4j", TEST_PASSWORD)) as driver:
            records, _, _ = driver.execute_query("MATCH (p:Probe) RETURN p.value AS v")
        assert [r["v"] for r in records] == [42]
    finally:
        again.stop()

    wrong = LocalServer(throwaway_config(tmp_path, password="another-password"))
    with pytest.raises(LocalServerError, match=r"refused the password .* IDGRAPH_NEO4J_PASSWORD"):
        wrong.start()
    assert not wrong.status().running
