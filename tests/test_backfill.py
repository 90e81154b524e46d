"""``idgraph backfill`` leaves the graph ``idgraph load`` leaves for the same files.

The loads run on the session's server; the backfills on a server of this module's own,
since a backfill stops and restarts the server it rebuilds.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from identity.config import Settings, load_settings
from identity.errors import InputError
from identity.store.driver import Graph
from identity.store.local_server import LocalServer
from loaders.synth import SynthConfig, generate
from tests.backfilling import (
    backfill_server,
    hard_segment_events,
    load_all,
    rejects_of,
    run_backfill,
    snapshot,
    write_dmp_table,
    write_ndjson,
)

pytestmark = [pytest.mark.neo4j, pytest.mark.slow]

Server = tuple[LocalServer, Graph, Settings]


@pytest.fixture(scope="module")
def own_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with backfill_server(tmp_path_factory.mktemp("backfill-server")) as server:
        yield server


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list]:
    """A small synthetic data set and the hard cases, as segment files and CSV tables."""
    root = tmp_path_factory.mktemp("inputs")
    synth = generate(root / "synth", SynthConfig(people=60, gzip=True)).files
    hard = hard_segment_events()
    first = write_ndjson(root / "hard.ndjson", hard)
    again = write_ndjson(root / "again.ndjson.gz", [hard[7], hard[0], hard[-1]], compress=True)
    feed, feed_mapping = write_dmp_table(root)
    return {
        "segment": [synth["events"], first, again],
        "csv": [
            (synth["crm"], synth["crm_mapping"]),
            (synth["dmp"], synth["dmp_mapping"]),
            (feed, feed_mapping),
        ],
    }


def _config(tmp_path: Path, name: str, chunk_size: int) -> Settings:
    # one writer: with more, chunks commit in any order, and which copy of a duplicated
    # messageId a load keeps depends on it (the counts and the graph do not)
    return load_settings(
        rejects_dir=tmp_path / name / "rejects",
        state_dir=tmp_path / name / "state",
        chunk_size=chunk_size,
        writers=1,
    )


@pytest.mark.parametrize("chunk_size", [7, 5000])
def test_backfill_leaves_the_graph_load_leaves(
    graph: Graph, own_server: Server, inputs: dict[str, list], tmp_path: Path, chunk_size: int
) -> None:
    loaded = load_all(graph, _config(tmp_path, "load", chunk_size), inputs["segment"],
                      inputs["csv"])  # fmt: skip
    server, target, _ = own_server
    target.wipe()
    report = run_backfill(
        server, target, _config(tmp_path, "backfill", chunk_size), inputs["segment"],
        inputs["csv"],
    )  # fmt: skip
    assert [(r.batch_id, r.status, r.counts) for r in report.files] == [
        (r.batch_id, r.status, r.counts) for r in loaded
    ]
    assert rejects_of(report.files) == rejects_of(loaded)
    expected, got = snapshot(graph), snapshot(target)
    assert got["nodes"] == expected["nodes"]
    assert got["relationships"] == expected["relationships"]
    assert report.rows["renamed_properties"] > 0  # "Add (promo)", "a:b", "page:Home"
    assert report.rows["properties_set_after"] > 0  # a trait of a minority type
    assert report.totals.reasons["duplicate_message_id"] >= 3


def test_a_database_holding_data_is_refused_unless_replaced(
    own_server: Server, inputs: dict[str, list], tmp_path: Path
) -> None:
    server, target, _ = own_server
    target.wipe()
    config = _config(tmp_path, "backfill", 50)
    run_backfill(server, target, config, inputs["segment"][1:2], [])
    with pytest.raises(InputError, match=r"already holds data .*--replace"):
        run_backfill(server, target, config, inputs["segment"][1:2], [])
    shutil.rmtree(tmp_path / "backfill" / "rejects")
    run_backfill(server, target, config, inputs["segment"][1:2], [], replace=True)
