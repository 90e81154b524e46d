"""``idgraph backfill`` leaves the graph ``idgraph load`` leaves for the same files.

The loads run on the session's server; the backfills on a server of this module's own,
since a backfill stops and restarts the server it rebuilds.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from identity.backfill import aggregate
from identity.backfill.csvfiles import importable
from identity.backfill.service import PHASES, BackfillReport, local_server
from identity.backfill.staging import typed_value, value_type
from identity.cli.backfill import print_backfill
from identity.config import Settings, load_settings
from identity.errors import InputError
from identity.ingest.service import LoadReport, load_segment_file
from identity.model import TraitValue
from identity.privacy.forget import forget_profile
from identity.resolve.service import resolve_identities
from identity.store import merge
from identity.store.bulk_writes import read_tombstones, write_tombstones
from identity.store.driver import Graph
from identity.store.local_server import LocalServer
from identity.store.rows import Counts, text_of
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
from tests.cli import idgraph
from tests.services import services

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
    garbage = root / "garbage.ndjson"
    garbage.write_bytes(bytes(range(256)) * 4 + b"\n{}\n")
    return {
        "segment": [synth["events"], first, again, garbage],
        "csv": [
            (synth["crm"], synth["crm_mapping"]),
            (synth["dmp"], synth["dmp_mapping"]),
            (feed, feed_mapping),
        ],
    }


def _config(tmp_path: Path, name: str, chunk_size: int, dedup_days: int = 30) -> Settings:
    # one writer: with more, chunks commit in any order, and which copy of a duplicated
    # messageId a load keeps depends on it (the counts and the graph do not)
    return load_settings(
        rejects_dir=tmp_path / name / "rejects",
        state_dir=tmp_path / name / "state",
        chunk_size=chunk_size,
        dedup_days=dedup_days,
        writers=1,
    )


@pytest.mark.neo4j
@pytest.mark.slow
@pytest.mark.parametrize(
    "chunk_size,dedup_days,max_codes",
    # small chunks, a short window and few codes kept make every rule of duplicates matter;
    # the defaults are compared by the test of --replace
    [(7, 2, 3)],
)
def test_backfill_leaves_the_graph_load_leaves(
    graph: Graph,
    own_server: Server,
    inputs: dict[str, list],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    chunk_size: int,
    dedup_days: int,
    max_codes: int | None,
) -> None:
    if max_codes is not None:
        monkeypatch.setattr(merge, "MAX_CODES", max_codes)
        monkeypatch.setattr(aggregate, "MAX_CODES", max_codes)
    segment, csv = inputs["segment"], inputs["csv"]
    loaded = load_all(graph, _config(tmp_path, "load", chunk_size, dedup_days), segment, csv)
    server, target, _ = own_server
    target.wipe()
    config = _config(tmp_path, "backfill", chunk_size, dedup_days)
    report = run_backfill(server, target, config, segment, csv)
    assert [(r.batch_id, r.status, r.counts) for r in report.files] == [
        (r.batch_id, r.status, r.counts) for r in loaded
    ]
    assert rejects_of(report.files) == rejects_of(loaded)
    expected, got = snapshot(graph), snapshot(target)
    assert got["nodes"] == expected["nodes"]
    assert got["relationships"] == expected["relationships"]
    # what the inputs hold, so that the comparison above means something
    assert report.rows["renamed_properties"] > 0  # "Add (promo)", "a:b", "page:Home"
    assert report.rows["properties_set_after"] > 0  # a trait of a minority type
    assert report.totals.reasons["duplicate_message_id"] >= 3
    assert {"invalid_json", "no_identifier"} <= set(report.totals.reasons)
    assert {"invalid_email", "invalid_ttl"} <= set(report.totals.value_reasons)
    garbage = next(r for r in report.files if r.file.endswith("garbage.ndjson"))
    assert garbage.counts.read and not garbage.counts.accepted


@pytest.mark.neo4j
@pytest.mark.slow
def test_replace_keeps_tombstones_and_the_database_takes_loads_and_resolves(
    graph: Graph, own_server: Server, inputs: dict[str, list], tmp_path: Path
) -> None:
    server, target, _ = own_server
    target.wipe()
    hard = inputs["segment"][1]
    feed = inputs["csv"][2:]
    load_all(target, _config(tmp_path, "first", 5000), [hard], [])
    with pytest.raises(InputError, match=r"already holds \S+ \([\d,]+ nodes\).*--replace"):
        run_backfill(server, target, _config(tmp_path, "refused", 5000), [hard], feed)
    resolve_identities(services(target))
    forget_profile(services(target, actor="test"), identifier="crm_id:U1", reason="asked")
    tombstones = read_tombstones(target)
    assert len(tombstones) >= 3

    # a message whose primary was erased, on an identifier that exists: a load keeps no code
    after = [{"type": "track", "event": "x", "timestamp": "2026-09-02T00:00:00Z",
              "messageId": "m-20", "userId": "U1", "anonymousId": "ck-2"}]  # fmt: skip
    files = [hard, write_ndjson(tmp_path / "after.ndjson", after)]
    write_tombstones(graph, tombstones)  # a load of the same files where they were erased
    loaded = load_all(graph, _config(tmp_path, "load", 5000), files, feed)
    report = run_backfill(
        server, target, _config(tmp_path, "backfill", 5000), files, feed, replace=True
    )
    assert report.rows["tombstones"] == len(tombstones)
    assert report.totals.value_reasons["forgotten"] > 0
    assert report.totals.reasons["forgotten"] > 0
    assert [(r.batch_id, r.counts) for r in report.files] == [
        (r.batch_id, r.counts) for r in loaded
    ]
    assert rejects_of(report.files) == rejects_of(loaded)
    assert snapshot(target) == snapshot(graph)
    assert not target.read("erased", "MATCH (i:Identifier {key: 'crm_id:U1'}) RETURN i")

    ctx = services(target, config=_config(tmp_path, "backfill", 5000))
    assert load_segment_file(ctx, hard).status == "already_loaded"
    new = [{"type": "track", "event": "x", "timestamp": "2026-10-01T00:00:00Z",
            "anonymousId": "ck-new", "userId": "U3"}]  # fmt: skip
    assert load_segment_file(ctx, write_ndjson(tmp_path / "new.ndjson", new)).counts.accepted
    assert resolve_identities(ctx).identities > 0


def test_an_external_server_is_refused_with_what_to_do() -> None:
    settings = load_settings(neo4j_uri="bolt://db.internal:7687")
    with pytest.raises(InputError, match=r"on the database host .* `idgraph load`"):
        local_server(settings)


def test_the_command_refuses_an_external_server_and_a_csv_without_mapping(
    tmp_path: Path,
) -> None:
    events = write_ndjson(tmp_path / "e.ndjson", hard_segment_events())
    external = {"IDGRAPH_NEO4J_URI": "bolt://127.0.0.1:1", "IDGRAPH_STATE_DIR": str(tmp_path)}
    done = idgraph("backfill", "--segment", str(events), env=external)
    assert done.returncode == 1
    assert "run the backfill on the database host" in done.stderr
    done = idgraph("backfill", "--csv", str(events), env=external)
    assert done.returncode == 1 and "FILE:MAPPING" in done.stderr


@pytest.mark.parametrize("value", [True, False, 0, -5, 2**62, 0.1, 1e16, -2.5e-300, "", "x, y"])
def test_trait_values_survive_staging_as_typed_text(value: TraitValue) -> None:
    back = typed_value(value_type(value), text_of(value))
    assert back == value and type(back) is type(value)


def test_names_the_importer_would_mangle_are_renamed_after() -> None:
    assert importable("event_count.Order Completed") and importable("trait.crm.first_name")
    # a header's type is always given, and the importer reads it after the last colon
    assert importable("event_count.page:Home") and importable("event_first.screen:Cart")
    for name in ("event_count.Add (promo)", "trait.s.{x}", "a,b", " a"):
        assert not importable(name)


def test_the_report_prints_files_phases_and_throughput(capsys: pytest.CaptureFixture[str]) -> None:
    counts = Counts(read=10, accepted=8, rejected=2, reasons=Counter({"invalid_json": 2}))
    file = LoadReport("segment-s-1", "s", "e.ndjson", "ab", "completed", counts, None, 1.0)
    phases = dict.fromkeys(PHASES, 0.5)
    print_backfill(BackfillReport((file,), counts, phases, {"identifiers": 7}))
    printed = capsys.readouterr().out
    assert "e.ndjson: batch segment-s-1" in printed and "invalid_json" in printed
    assert all(phase in printed for phase in PHASES)
    assert "identifiers 7" in printed and "throughput: 3 records/s" in printed
