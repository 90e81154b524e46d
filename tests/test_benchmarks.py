"""Benchmarks are programs, not tests: this only runs each at a tiny size so they keep working."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from identity.config import Settings
from identity.policy import Policy
from identity.store.driver import Graph
from tests.cli import server_env

ROOT = Path(__file__).resolve().parent.parent


def _run(script: str, out: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    """Run ``benchmarks/<script>`` with ``args`` and ``--out``; return its JSON report."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args, "--out", str(out)],
        env={**os.environ, **(env or {}), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(out.read_text())


@pytest.mark.neo4j
def test_load_benchmark_smoke(graph: Graph, neo4j_settings: Settings, tmp_path: Path) -> None:
    report = _run(
        "load.py",
        tmp_path / "load.json",
        *("--people", "40", "--naive-events", "60", "--chunk-size", "100"),
        *("--breakdown-events", "200", "--heap", "512m", "--pagecache", "128m"),
        env=server_env(neo4j_settings),
    )
    assert report["naive"]["events"] == 60
    assert report["idgraph"]["events"] == report["parse_only"]["events"] > 60
    assert report["ratio"] > 0 and report["graph"]["ids"] > 0
    # the backfill reads the same events and leaves the same graph
    assert report["backfill"]["events"] == report["idgraph"]["events"]
    assert report["backfill"]["accepted"] == report["idgraph"]["accepted"]
    assert report["backfill_graph"] == report["graph"]
    assert report["backfill"]["peak_rss_mb"] > 0 and report["idgraph"]["peak_rss_mb"] > 0
    assert set(report["breakdown_seconds"]) >= {
        "lock and read",
        "create identifiers",
        "create links",
        "prepare: dedupe, aggregate (Python)",
    }
    assert "other" not in report["breakdown_seconds"]  # every statement has its name


def test_components_benchmark_smoke(tmp_path: Path) -> None:
    report = _run("components.py", tmp_path / "components.json", "--nodes", "2000", "--repeat", "1")
    assert report["nodes"] == 2000 and report["agree"] is True
    assert len(report["methods"]) == 3


@pytest.mark.neo4j
def test_resolve_benchmark_smoke(graph: Graph, neo4j_settings: Settings, tmp_path: Path) -> None:
    report = _run(
        "resolve.py",
        tmp_path / "resolve.json",
        *("--identifiers", "3000", "--batches", "3", "--batch-events", "50", "--repeat", "1"),
        env=server_env(neo4j_settings),
    )
    shape = report["graph"]
    assert shape["identifiers"] == 3000
    assert 1.5 * 3000 < shape["links"] < 2.5 * 3000
    assert set(shape["by_type"]) == set(Policy().types)
    first, again = report["full"]["first"], report["full"]["again"]
    assert first["mode"] == again["mode"] == "full"
    assert first["identifiers"] == 3000 and first["plan"]["created"] == first["identities"] > 0
    assert again["plan"]["moved"] == 0 and again["identities"] == first["identities"]
    assert first["shared"] > 0  # the kiosk, the tablets and the store email
    compute = report["compute"]
    assert compute["components_agree"] is True and len(compute["methods"]) == 5
    runs = report["incremental"]["runs"]
    assert report["incremental"]["batches"] == 3 and report["incremental"]["warmup_batches"] == 1
    assert len(runs) == 4 and all(r["mode"] == "incremental" for r in runs)
    assert all(r["events"] == r["accepted"] == 50 and r["identifiers"] > 0 for r in runs)
    assert set(report["targets"]) == {
        "full_seconds",
        "compute_vs_scipy",
        "incremental_p95_seconds",
    }


@pytest.mark.neo4j
def test_api_benchmark_smoke(graph: Graph, neo4j_settings: Settings, tmp_path: Path) -> None:
    report = _run(
        "api.py",
        tmp_path / "api.json",
        *("--identities", "300", "--sample", "100", "--concurrency", "4"),
        *("--seconds", "2", "--warmup", "1", "--neo4j-warmup", "1"),
        env=server_env(neo4j_settings),
    )
    assert report["setup"]["identities"] > 0 and report["setup"]["emails_sampled"] > 0
    for row in (report["api"], report["driver"]):
        assert row["requests"] > 0 and row["errors"] == 0, row["error_kinds"]
        assert 0 < row["p50_ms"] <= row["p99_ms"] <= row["max_ms"]
    assert set(report["targets"]) == {"api_requests_per_s", "api_p99_ms", "p50_vs_driver"}


@pytest.mark.neo4j
def test_segments_benchmark_smoke(graph: Graph, neo4j_settings: Settings, tmp_path: Path) -> None:
    report = _run(
        "segments.py",
        tmp_path / "segments.json",
        *("--identities", "2000", "--changed", "0.05"),
        env=server_env(neo4j_settings),
    )
    assert report["agree"] is True
    size = report["naive"]["size"]
    assert 0 < size == report["estimate"]["size"] == report["refresh"]["first"]["entered"]
    again = report["refresh"]["again"]
    assert again["entered"] == again["left"] == 0 and again["size"] == size
    changed = report["refresh"]["changed"]
    assert changed["entered"] > 0 and changed["left"] > 0
    assert report["export"]["rows"] > 0 and report["naive"]["scanned"] == 2000


def test_spark_benchmark_smoke(tmp_path: Path) -> None:
    report = _run(
        "spark.py",
        tmp_path / "spark.json",
        *("--sizes", "2000"),
        env={"IDGRAPH_SPARK_MASTER": "local[2]", "IDGRAPH_SPARK_DRIVER_MEMORY": "1g"},
    )
    (run,) = report["runs"]
    assert run["same_answer"] and run["identifiers"] == 2000
    assert run["spark_seconds"] > 0 and run["default_seconds"] > 0
    assert set(run["spark_stages"]) >= {"candidates", "shared", "bridges", "limits", "write"}
    assert report["peak_rss_mb"]["spark_jvm"] > 0


@pytest.mark.neo4j
def test_webhooks_benchmark_smoke(graph: Graph, neo4j_settings: Settings, tmp_path: Path) -> None:
    report = _run(
        "webhooks.py",
        tmp_path / "webhooks.json",
        *("--people", "200", "--changes", "5", "--interval", "0.05", "--poll", "0.5"),
        env=server_env(neo4j_settings),
    )
    assert report["unsigned"] == 0 and report["throughput"]["events"] == 200
    for row in (report["latency"]["webhook"], report["latency"]["polling"]):
        assert 0 < row["p50_ms"] <= row["p95_ms"] <= row["max_ms"]
    assert report["polling_over_webhook_p50"] > 0


def test_match_benchmark_smoke(tmp_path: Path) -> None:
    report = _run("match.py", tmp_path / "match.json", "--sizes", "2000", "--samples", "500")
    run = report["runs"][0]
    assert run["rows"] == 2000 and run["pairs_compared"] > 0
    assert run["at_threshold"]["recall"] > 0.5
