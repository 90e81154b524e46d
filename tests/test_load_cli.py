"""`idgraph synth` and `idgraph load` as real processes: the synth data end to end, a load
killed half-way and resumed, and errors that stop a load before it starts."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from identity.config import Settings
from identity.store.driver import Graph
from tests.cli import idgraph, server_env
from tests.loading import fingerprint

pytestmark = pytest.mark.neo4j


def cli_env(settings: Settings, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {**server_env(settings), "IDGRAPH_REJECTS_DIR": str(tmp_path / "rejects"), **extra}


def test_synth_data_loads_end_to_end(
    graph: Graph, neo4j_settings: Settings, tmp_path: Path
) -> None:
    data = tmp_path / "synth"
    made = idgraph("synth", "--people", "150", "--out", str(data))
    assert made.returncode == 0, made.stderr
    env = cli_env(neo4j_settings, tmp_path)
    for args in (
        ("load", "segment", str(data / "events.ndjson")),
        ("load", "csv", str(data / "crm.csv"), "--mapping", str(data / "crm.mapping.toml")),
        ("load", "csv", str(data / "dmp.csv"), "--mapping", str(data / "dmp.mapping.toml")),
    ):
        result = idgraph(*args, env=env)
        assert result.returncode == 0, result.stderr
        assert "read" in result.stdout and "accepted" in result.stdout
    batches = graph.read(
        "batches",
        "MATCH (b:Batch) RETURN b.source AS s, b.read AS r, b.accepted AS a, "
        "b.rejected AS j, b.status AS st",
    )
    assert {b["s"] for b in batches} == {"segment", "crm", "dmp"}
    for b in batches:
        assert b["st"] == "completed" and b["r"] == b["a"] + b["j"] and b["a"] > 0
    with (data / "events.ndjson").open() as handle:
        events = sum(1 for _ in handle)
    assert next(b["r"] for b in batches if b["s"] == "segment") == events

    # every identifier of the ground truth made it into the graph, but for junk values and
    # test@example.com, which the built-in block list keeps out
    with (data / "truth.csv").open() as handle:
        truth = {
            f"{r['type']}:{r['value']}" for r in csv.DictReader(handle) if r["person"] != "junk"
        }
    stored = {r["k"] for r in graph.read("keys", "MATCH (i:Identifier) RETURN i.key AS k")}
    assert truth - stored == {"email:test@example.com"}
    third = graph.read("dmp", "MATCH (:Cookie)-[r:LINKED]-(:DmpId) RETURN DISTINCT r.party AS p")
    assert {r["p"] for r in third} <= {"first", "third"}
    assert graph.read(
        "segments", "MATCH ()-[m:IN_SEGMENT]->(:DmpSegment) RETURN count(m) > 0 AS any"
    ) == [{"any": True}]


def test_killed_load_resumes_to_the_state_of_one_clean_load(
    graph: Graph, neo4j_settings: Settings, tmp_path: Path
) -> None:
    data = tmp_path / "synth"
    assert idgraph("synth", "--people", "400", "--out", str(data)).returncode == 0
    events = data / "events.ndjson"
    env = {**os.environ, **cli_env(neo4j_settings, tmp_path, IDGRAPH_CHUNK_SIZE="40")}
    command = [sys.executable, "-m", "identity", "load", "segment", str(events)]

    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    done = 0
    while time.monotonic() < deadline and process.poll() is None:
        rows = graph.read("progress", "MATCH (b:Batch) RETURN b.chunks_done AS done")
        done = rows[0]["done"] if rows else 0
        if done >= 5:
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL, "the load ended before it could be killed"
    state = graph.read("state", "MATCH (b:Batch) RETURN b.status AS s, b.chunks_done AS c")
    assert state[0]["s"] == "running" and state[0]["c"] >= 5

    resumed = idgraph(
        "load",
        "segment",
        str(events),
        env=cli_env(neo4j_settings, tmp_path, IDGRAPH_CHUNK_SIZE="40"),
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "chunks were already written" in resumed.stdout
    after_resume = fingerprint(graph)

    graph.wipe()
    clean = idgraph(
        "load",
        "segment",
        str(events),
        env=cli_env(neo4j_settings, tmp_path, IDGRAPH_CHUNK_SIZE="40"),
    )
    assert clean.returncode == 0, clean.stderr
    assert fingerprint(graph) == after_resume


def test_mapping_errors_stop_before_loading(
    graph: Graph, neo4j_settings: Settings, tmp_path: Path
) -> None:
    table = tmp_path / "crm.csv"
    table.write_text("id,mail\n1,a@b.fr\n")
    mapping = tmp_path / "crm.toml"
    mapping.write_text('source = "crm"\n[identifiers]\nid = "crm_id"\nemail = "email"\n')
    result = idgraph(
        "load", "csv", str(table), "--mapping", str(mapping), env=cli_env(neo4j_settings, tmp_path)
    )
    assert result.returncode == 1
    assert "column(s) 'email' named in the mapping are not in the file" in result.stderr
    mapping.write_text('source = "crm"\n[identifiers]\nid = "customer_no"\n')
    result = idgraph(
        "load", "csv", str(table), "--mapping", str(mapping), env=cli_env(neo4j_settings, tmp_path)
    )
    assert result.returncode == 1
    assert "unknown identifier type 'customer_no'" in result.stderr
    assert graph.read("nodes", "MATCH (n) RETURN count(n) AS n") == [{"n": 0}]


def test_empty_file_and_missing_file(neo4j_settings: Settings, tmp_path: Path) -> None:
    empty = tmp_path / "empty.ndjson"
    empty.write_bytes(b"")
    result = idgraph("load", "segment", str(empty), env=cli_env(neo4j_settings, tmp_path))
    assert result.returncode == 1 and "is empty: nothing to load" in result.stderr
    result = idgraph(
        "load", "segment", str(tmp_path / "nope.ndjson"), env=cli_env(neo4j_settings, tmp_path)
    )
    assert result.returncode == 1 and "no such file" in result.stderr


def test_a_load_that_accepts_nothing_fails(
    graph: Graph, neo4j_settings: Settings, tmp_path: Path
) -> None:
    noise = tmp_path / "noise.ndjson"
    noise.write_bytes(bytes(range(256)) * 3 + b"\n" + b"\x00\xff not json\n" * 14)
    result = idgraph("load", "segment", str(noise), env=cli_env(neo4j_settings, tmp_path))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "read" in result.stdout and "rejected" in result.stdout  # the counts are printed
    assert "nothing accepted from" in result.stderr and "every record was rejected" in result.stderr
    assert "Traceback" not in result.stderr


def test_driver_logs_go_through_idgraph_only_when_debugging(tmp_path: Path) -> None:
    """A record the driver logs (as when Neo4j dies under a load) is not printed raw before
    idgraph's own message; with IDGRAPH_LOG_LEVEL=DEBUG it is, in idgraph's words."""
    script = (
        "import logging; from identity.cli.common import route_driver_logs; "
        "import sys; route_driver_logs(sys.argv[1] == 'debug'); "
        "logging.getLogger('neo4j.io').error("
        "'[#99FC] _: <CONNECTION> error: Failed to read from defunct connection')"
    )
    quiet = subprocess.run(
        [sys.executable, "-c", script, "quiet"], capture_output=True, text=True, check=True
    )
    assert quiet.stderr == "" and quiet.stdout == ""
    loud = subprocess.run(
        [sys.executable, "-c", script, "debug"], capture_output=True, text=True, check=True
    )
    assert "debug: neo4j driver: [#99FC]" in loud.stderr


def test_demo_loads_once(graph: Graph, neo4j_settings: Settings, tmp_path: Path) -> None:
    env = cli_env(neo4j_settings, tmp_path, IDGRAPH_STATE_DIR=str(tmp_path / "state"))
    first = idgraph("demo", "--people", "60", env=env)
    assert first.returncode == 0, first.stderr
    assert "full resolve" in first.stdout
    before = fingerprint(graph)
    assert len(before["identifiers"]) > 100
    count = "MATCH (p:Identity) RETURN count(p) AS n"
    identities = graph.read("identities", count)[0]["n"]
    assert identities > 20
    second = idgraph("demo", "--people", "60", env=env)
    assert second.returncode == 0, second.stderr
    assert second.stdout.count("already loaded") == 3
    assert "incremental resolve" in second.stdout
    assert fingerprint(graph) == before
    assert graph.read("identities", count)[0]["n"] == identities
