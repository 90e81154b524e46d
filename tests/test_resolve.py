"""Resolution against a real Neo4j: identities, stable ids, lineage, incremental runs, faults."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from identity.errors import ResolveBusyError
from identity.ingest.service import load_segment_file
from identity.policy import Policy, TypeRule
from identity.store import identities as identities_store
from identity.store import runs as runs_store
from identity.store.driver import Graph
from identity.store.schema import init_schema
from tests.resolving import (
    check_invariants,
    identify,
    identity_of,
    load_events,
    recomputed,
    run,
    stored,
)
from tests.services import services

pytestmark = pytest.mark.neo4j


def _events(graph: Graph, tmp_path: Path, kind: str) -> list[dict[str, object]]:
    rows = graph.read(
        "events",
        "MATCH (e:IdentityEvent {kind: $kind})-[a:AFFECTED]->(p:Identity) "
        "RETURN e.reason AS reason, a.role AS role, p.id AS id ORDER BY e.at",
        {"kind": kind},
    )
    return rows


def test_full_resolve_forms_identities_and_writes_nothing_when_run_again(
    graph: Graph, tmp_path: Path
) -> None:
    load_events(
        graph,
        tmp_path,
        "a",
        [
            identify(1, user="C1", cookie="ck-1", email="ann@example.org"),
            identify(2, cookie="ck-2", email="ann@example.org"),
            identify(3, user="C2", cookie="ck-3", email="bob@example.org"),
        ],
    )
    report = run(graph, tmp_path)
    assert report.mode == "full" and report.why == "no resolve has completed yet"
    assert stored(graph) == {
        frozenset({"crm_id:C1", "cookie:ck-1", "cookie:ck-2", "email:ann@example.org"}),
        frozenset({"crm_id:C2", "cookie:ck-3", "email:bob@example.org"}),
    }
    check_invariants(graph)
    assert report.plan["created"] == 2
    assert len(_events(graph, tmp_path, "created")) == 2
    again = run(graph, tmp_path, full=True)
    assert again.plan == {"created": 0, "merged": 0, "split": 0, "unchanged": 2, "moved": 0}
    assert len(_events(graph, tmp_path, "created")) == 2


def test_merge_keeps_the_oldest_id_and_redirects_the_other(graph: Graph, tmp_path: Path) -> None:
    load_events(graph, tmp_path, "a", [identify(1, user="C1", cookie="ck-1")])
    run(graph, tmp_path)
    old = identity_of(graph, "crm_id:C1")
    time.sleep(0.01)
    load_events(graph, tmp_path, "b", [identify(2, cookie="ck-2", email="ann@example.org")])
    report = run(graph, tmp_path)
    assert report.mode == "incremental"
    young = identity_of(graph, "cookie:ck-2")
    assert young != old
    load_events(graph, tmp_path, "c", [identify(3, cookie="ck-2", user="C1")])
    report = run(graph, tmp_path)
    assert report.plan["merged"] == 1
    assert identity_of(graph, "cookie:ck-2") == old
    rows = graph.read(
        "merged into",
        "MATCH (l:Identity {id: $young})-[:MERGED_INTO]->(w:Identity) "
        "RETURN w.id AS id, l.status AS status",
        {"young": young},
    )
    assert rows == [{"id": old, "status": "merged"}]
    merged = _events(graph, tmp_path, "merged")
    assert {(r["role"], r["id"]) for r in merged} == {("merged", young), ("survivor", old)}
    assert "linked by" in str(merged[0]["reason"])
    check_invariants(graph)


def test_split_keeps_the_id_with_the_larger_part(graph: Graph, tmp_path: Path) -> None:
    # ck-x joins ann and bob; once bob's own crm id shows up, the crm id limit splits them
    load_events(
        graph,
        tmp_path,
        "a",
        [
            identify(1, user="C1", cookie="ck-1", email="ann@example.org", phone="0611223344"),
            identify(2, cookie="ck-1", email="ann@example.org"),
            identify(3, cookie="ck-x", email="ann@example.org"),
            identify(4, cookie="ck-x", email="bob@example.org"),
        ],
    )
    run(graph, tmp_path)
    before = identity_of(graph, "crm_id:C1")
    assert identity_of(graph, "email:bob@example.org") == before
    load_events(
        graph,
        tmp_path,
        "b",
        [identify(5, user="C2", cookie="ck-9", email="bob@example.org")],
    )
    report = run(graph, tmp_path)
    assert report.mode == "incremental"
    assert identity_of(graph, "crm_id:C1") == before  # the larger part keeps the id
    assert identity_of(graph, "crm_id:C2") != before
    splits = _events(graph, tmp_path, "split")
    assert splits and any(r["role"] == "split" and r["id"] == before for r in splits)
    check_invariants(graph)
    assert stored(graph) == recomputed(graph, tmp_path)


def test_incremental_reads_only_the_touched_region(graph: Graph, tmp_path: Path) -> None:
    people = [identify(i, user=f"C{i}", cookie=f"ck-{i}", email=f"p{i}@ex.org") for i in range(40)]
    load_events(graph, tmp_path, "a", people)
    run(graph, tmp_path)
    load_events(graph, tmp_path, "b", [identify(100, user="C3", cookie="ck-new")])
    report = run(graph, tmp_path)
    assert report.mode == "incremental"
    assert report.identifiers == 4  # C3's identity plus the new cookie
    assert report.plan["moved"] == 1
    assert stored(graph) == recomputed(graph, tmp_path)


def test_policy_change_makes_the_next_run_full(graph: Graph, tmp_path: Path) -> None:
    load_events(
        graph,
        tmp_path,
        "a",
        [identify(i, user="C1", phone=f"06112233{i:02d}") for i in range(4)],
    )
    run(graph, tmp_path)
    assert len(stored(graph)) == 2  # crm id with 3 phones, and one phone refused by the limit
    looser = Policy(rules={**Policy().rules, "phone": TypeRule(limit=5, priority=60)})
    dry = run(graph, tmp_path, policy=looser, dry_run=True)
    assert dry.mode == "full" and dry.why == "the policy changed since the last resolve"
    assert dry.plan["merged"] == 1 and any(c.startswith("merge ") for c in dry.changes)
    assert len(stored(graph)) == 2  # a dry run writes nothing
    report = run(graph, tmp_path, policy=looser)
    assert report.mode == "full"
    assert len(stored(graph)) == 1


def test_second_resolve_refuses_while_the_lock_is_held(graph: Graph, tmp_path: Path) -> None:
    load_events(graph, tmp_path, "a", [identify(1, user="C1", cookie="ck-1")])
    lock = runs_store.ResolveLock(graph, "other-run")
    lock.pid = os.getppid()  # a live process holds it
    lock.acquire()
    with pytest.raises(ResolveBusyError, match="another resolve is running"):
        run(graph, tmp_path)
    releaser = threading.Timer(1.0, lock.release)
    releaser.start()
    report = run(graph, tmp_path, wait=20)
    releaser.join()
    assert report.mode == "full" and len(stored(graph)) == 1


def test_lock_of_a_dead_process_is_taken_over(graph: Graph, tmp_path: Path) -> None:
    load_events(graph, tmp_path, "a", [identify(1, user="C1", cookie="ck-1")])
    lock = runs_store.ResolveLock(graph, "dead-run")
    lock.pid = 2**22 + 12345  # no such process
    lock.acquire()
    assert run(graph, tmp_path).mode == "full"


def test_interrupted_resolve_leaves_whole_identities_and_rerun_finishes(
    graph: Graph, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    load_events(graph, tmp_path, "first", [identify(99, user="C99", cookie="ck-99")])
    run(graph, tmp_path)
    people = [identify(i, user=f"C{i}", cookie=f"ck-{i}", email=f"p{i}@ex.org") for i in range(30)]
    load_events(graph, tmp_path, "a", people)
    monkeypatch.setattr(identities_store, "_ROWS_PER_TX", 1)  # one unit per transaction

    class Killed(BaseException):
        pass

    def kill_after_some(step: str, done: int, total: int | None) -> None:
        if step == "write" and done >= 10:
            raise Killed

    with pytest.raises(Killed):
        run(graph, tmp_path, full=True, progress=kill_after_some)
    written = stored(graph)
    assert 10 <= len(written) < 31
    assert written <= recomputed(graph, tmp_path)  # each identity written is whole
    report = run(graph, tmp_path)
    assert report.mode == "full" and report.why == "the last full resolve did not finish"
    assert stored(graph) == recomputed(graph, tmp_path)
    assert report.plan["unchanged"] == len(written)
    check_invariants(graph)


def test_circuit_breaker_quarantines_and_releases(graph: Graph, tmp_path: Path) -> None:
    events = [identify(i, user="C1", cookie=f"ck-{i}") for i in range(7)]
    load_events(graph, tmp_path, "a", events)
    tight = Policy(max_identity_size=5)
    report = run(graph, tmp_path, policy=tight)
    assert len(report.quarantined) == 1 and report.quarantined[0].size == 8
    assert len(stored(graph)) == 8  # nothing merged
    rows = graph.read(
        "quarantine",
        "MATCH (q:Quarantine) RETURN q.status AS status, q.size AS size, "
        "COUNT { MATCH (i:Identifier) WHERE i.quarantine = q.id } AS members",
    )
    assert rows == [{"status": "open", "size": 8, "members": 8}]
    report = run(graph, tmp_path)  # the default bound (1,000): a full run, merged
    assert report.mode == "full" and not report.quarantined
    assert len(stored(graph)) == 1
    rows = graph.read(
        "quarantine",
        "MATCH (q:Quarantine) RETURN q.status AS status, "
        "COUNT { MATCH (i:Identifier) WHERE i.quarantine IS NOT NULL } AS left",
    )
    assert rows == [{"status": "released", "left": 0}]
    check_invariants(graph)


def test_resolve_on_an_empty_database(graph: Graph, tmp_path: Path) -> None:
    report = run(graph, tmp_path)
    assert report.mode == "full" and report.identifiers == 0 and report.identities == 0
    again = run(graph, tmp_path)
    assert again.mode == "incremental" and again.identifiers == 0


def test_source_settings_override_the_party(graph: Graph, tmp_path: Path) -> None:
    path = tmp_path / "partner.ndjson"
    path.write_text(json.dumps(identify(1, user="C1", cookie="ck-1")) + "\n")
    init_schema(graph)
    load_segment_file(services(graph, tmp_path), path, source="partner", party="second")
    run(graph, tmp_path)
    assert len(stored(graph)) == 1  # second party merges by default
    enrich_only = Policy(source_merge={"partner": False})
    assert run(graph, tmp_path, policy=enrich_only).mode == "full"
    assert len(stored(graph)) == 2
    third = tmp_path / "dmp.ndjson"
    third.write_text(json.dumps(identify(2, user="C2", cookie="ck-2")) + "\n")
    load_segment_file(services(graph, tmp_path), third, source="dmp", party="third")
    trusted = Policy(source_merge={"partner": False, "dmp": True})
    run(graph, tmp_path, policy=trusted)
    assert frozenset({"crm_id:C2", "cookie:ck-2"}) in stored(graph)
    assert frozenset({"crm_id:C1", "cookie:ck-1"}) not in stored(graph)
    more = tmp_path / "dmp2.ndjson"
    more.write_text(json.dumps(identify(3, user="C2", cookie="ck-3")) + "\n")
    load_segment_file(services(graph, tmp_path), more, source="dmp", party="third")
    assert run(graph, tmp_path, policy=trusted).mode == "incremental"
    assert frozenset({"crm_id:C2", "cookie:ck-2", "cookie:ck-3"}) in stored(graph)
    assert stored(graph) == recomputed(graph, tmp_path, policy=trusted)
