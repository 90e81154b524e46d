"""Benchmarks are programs, not tests: this only runs each at a tiny size so they keep working."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from identity.config import Settings
from identity.store.driver import Graph
from tests.test_cli import _server_env

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.neo4j
def test_load_benchmark_smoke(graph: Graph, neo4j_settings: Settings, tmp_path: Path) -> None:
    out = tmp_path / "load.json"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "load.py"),
            "--people",
            "40",
            "--naive-events",
            "60",
            "--chunk-size",
            "100",
            "--breakdown-events",
            "200",
            "--out",
            str(out),
        ],
        env={**os.environ, **_server_env(neo4j_settings), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["naive"]["events"] == 60
    assert report["idgraph"]["events"] == report["parse_only"]["events"] > 60
    assert report["ratio"] > 0 and report["graph"]["ids"] > 0
    assert set(report["breakdown_seconds"]) >= {"identifiers (MERGE nodes)", "aggregate (Python)"}


def test_components_benchmark_smoke(tmp_path: Path) -> None:
    out = tmp_path / "components.json"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "components.py"),
            "--nodes",
            "2000",
            "--repeat",
            "1",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["nodes"] == 2000 and report["agree"] is True
    assert len(report["methods"]) == 3
