"""The Spark engine end to end: ``idgraph resolve --engine spark``, and ``export links`` ->
the job -> ``import memberships``, on synth data in a real Neo4j, against the default engine."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

import pytest

from identity.config import Settings
from identity.engines.spark import job
from identity.engines.spark.engine import session
from identity.normalize import make_normalizer
from identity.policy import Policy
from identity.resolve.engine import resolve
from identity.resolve.snapshot import read_full
from identity.store.driver import Graph
from tests.cli import cli_env, idgraph, ok
from tests.resolving import check_invariants, stored
from tests.spark_views import SPARK
from tests.test_resolve_cli import synth_loaded

pytestmark = pytest.mark.neo4j

AS_OF = "2026-11-01"
AS_OF_MS = int(datetime.fromisoformat(AS_OF).astimezone().timestamp() * 1000)
__all__ = ["synth_loaded"]  # a fixture used here


def _local_partition(graph: Graph, settings: Settings) -> set[frozenset[str]]:
    snapshot = read_full(graph, Policy(), make_normalizer(settings, Policy()))
    return resolve(snapshot.graph, Policy(), AS_OF_MS).partition()


def _unchanged(output: str) -> bool:
    return all(
        re.search(rf"{what}\s+0\n", output) for what in ("created", "merged", "split", "moved")
    )


def test_export_the_job_and_import_write_the_default_engines_identities(
    synth_loaded: Path, graph: Graph, neo4j_settings: Settings, tmp_path: Path
) -> None:
    env = cli_env(neo4j_settings, tmp_path)
    exchange = tmp_path / "exchange"
    said = ok("export", "links", "--out", str(exchange / "in"), "--as-of", AS_OF, env=env)
    counts = re.search(r"([\d,]+) identifiers and ([\d,]+) links written", said)
    assert counts is not None
    rules = json.loads((exchange / "in" / "rules.json").read_text())
    assert rules["as_of_ms"] == AS_OF_MS and "email" in rules["types"]

    # the job, as a cluster would run it, on this test run's Spark session
    summary = job.run(
        session(SPARK.spark_master, SPARK.spark_driver_memory),
        str(exchange / "in"),
        str(exchange / "out"),
    )
    assert set(summary["seconds"]) >= {"candidates", "shared", "bridges", "limits"}
    _refusals(graph, env, exchange / "out", tmp_path)

    dry = ok("import", "memberships", str(exchange / "out"), "--dry-run", env=env)
    assert "engine import" in dry and "would create" in dry
    assert graph.read("n", "MATCH (p:Identity) RETURN count(p) AS n")[0]["n"] == 0
    imported = ok("import", "memberships", str(exchange / "out"), env=env)
    assert "full resolve (asked for); run" in imported
    check_invariants(graph)
    assert stored(graph) == _local_partition(graph, neo4j_settings)
    assert sum(len(i) for i in stored(graph)) == int(counts[1].replace(",", ""))
    # the next run is incremental, from what the import recorded, and finds nothing to change
    after = ok("resolve", "--as-of", AS_OF, env=env)
    assert "incremental resolve" in after and _unchanged(after)


def _refusals(graph: Graph, env: dict[str, str], results: Path, tmp_path: Path) -> None:
    """Results are refused under another policy, after the graph changed, and from a directory
    the job did not write; nothing is written."""
    policy = tmp_path / "policy.toml"
    policy.write_text("[shared]\ntwo_hop = false\n")
    other_policy = {**env, "IDGRAPH_POLICY": str(policy)}
    refused = idgraph("import", "memberships", str(results), env=other_policy)
    assert refused.returncode == 1
    assert "computed under another policy" in refused.stderr
    refused = idgraph("import", "memberships", str(tmp_path), env=env)
    assert refused.returncode == 1 and "holds no rules.json" in refused.stderr
    refused = idgraph("export", "links", "--out", str(tmp_path / "x"), "--format", "csv", env=env)
    assert refused.returncode == 1 and "as parquet only" in refused.stderr
    refused = idgraph("resolve", "--engine", "dask", env=env)
    assert refused.returncode == 1 and "expected local or spark" in refused.stderr
    refused = idgraph("resolve", "--engine", "spark", "--spark-master", "nowhere", env=env)
    assert refused.returncode == 1 and "could not start Spark on nowhere" in refused.stderr

    late = {"type": "identify", "anonymousId": "late-cookie", "userId": "late-user",
            "messageId": "late-1", "timestamp": "2026-10-30T10:00:00Z"}  # fmt: skip
    events = tmp_path / "late.ndjson"
    events.write_text(json.dumps(late) + "\n")
    ok("load", "segment", str(events), env=env)
    refused = idgraph("import", "memberships", str(results), env=env)
    assert refused.returncode == 1
    assert "2 identifiers have no group" in refused.stderr
    assert "export and run the job again" in refused.stderr
    assert graph.read("n", "MATCH (p:Identity) RETURN count(p) AS n")[0]["n"] == 0
    graph.run(
        "forget the late identifiers",
        "MATCH (i:Identifier) WHERE i.key IN $keys DETACH DELETE i",
        {"keys": ["cookie:late-cookie", "crm_id:late-user"]},
    )


@pytest.mark.slow
@pytest.mark.timeout(900)  # loads 10,000 people, then starts Spark in a process of its own
def test_resolve_with_the_spark_engine_on_synth_10000_people(
    graph: Graph, neo4j_settings: Settings, tmp_path: Path
) -> None:
    data = tmp_path / "synth"
    # five events a person (ten by default): the same people and hard cases, half the loading
    ok("synth", "--people", "10000", "--events-per-person", "5", "--out", str(data), env={})
    # the test server's transaction memory is small: CRM rows with their traits in smaller chunks
    env = cli_env(neo4j_settings, tmp_path, IDGRAPH_CHUNK_SIZE="1000")
    ok("load", "segment", str(data / "events.ndjson"), env=env)
    ok("load", "csv", str(data / "crm.csv"), "--mapping", str(data / "crm.mapping.toml"), env=env)
    ok("load", "csv", str(data / "dmp.csv"), "--mapping", str(data / "dmp.mapping.toml"), env=env)
    result = idgraph(
        "resolve", "--engine", "spark", "--spark-master", "local[2]", "--as-of", AS_OF,
        env=env, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "full resolve (no resolve has completed yet); run" in result.stdout
    assert "engine spark" in result.stdout
    assert re.search(r"large-star/small-star rounds: components before bridges \d", result.stdout)
    assert re.search(r"shared devices split\s+[1-9]", result.stdout)
    check_invariants(graph)
    # the default engine over the same graph: the same identities, nothing to change
    assert stored(graph) == _local_partition(graph, neo4j_settings)
    assert sum(len(identity) for identity in stored(graph)) > 40_000
    again = ok("resolve", "--full", "--dry-run", "--as-of", AS_OF, env=env)
    assert "engine local" in again and _unchanged(again)
