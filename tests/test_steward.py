"""Steward actions against a real Neo4j: each action's effect, its audit trail, its errors,
the explanation it leaves, incremental equals full after each, and the CLI commands."""

from __future__ import annotations

import itertools
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from identity.config import Settings
from identity.errors import InputError, NotFoundError, ResolveBusyError
from identity.policy import Policy
from identity.resolve.explain import explain
from identity.steward import actions as steward
from identity.steward.actions import StewardResult
from identity.store import runs as runs_store
from identity.store.driver import Graph
from tests.cli import cli_env, idgraph, ok
from tests.resolving import (
    check_invariants,
    identify,
    identity_of,
    load_cookie_sync,
    load_events,
    recomputed,
    run,
    stored,
)
from tests.services import services

pytestmark = pytest.mark.neo4j

ACTOR = "steward:alice"
ANN = "email:ann@example.org"


def _now() -> datetime:
    return datetime.now(UTC)


def _act(graph: Graph, tmp_path: Path, action: str, *keys: str, **kw: Any) -> StewardResult:
    kw.setdefault("reason", f"{action} because the customer called")
    actor = kw.pop("actor", ACTOR)
    function = getattr(steward, action)
    result: StewardResult = function(services(graph, tmp_path, actor=actor), *keys, **kw)
    return result


def _consistent(graph: Graph, tmp_path: Path, result: StewardResult) -> None:
    """The identities the action's incremental resolve left are those of a full recompute."""
    assert result.report.mode == "incremental"
    assert stored(graph) == recomputed(graph, tmp_path, as_of=result.report.as_of)
    check_invariants(graph)


def _why(graph: Graph, tmp_path: Path, a: str, b: str) -> Any:
    return explain(services(graph, tmp_path, Policy()), a, b, as_of=_now())


def _resolved(graph: Graph, tmp_path: Path, *events: dict[str, Any]) -> None:
    """Load ``events`` as one batch, then resolve as of now (as steward actions do)."""
    load_events(graph, tmp_path, f"batch{len(list(tmp_path.glob('*.ndjson')))}", list(events))
    run(graph, tmp_path, as_of=_now())


def _together(graph: Graph, *keys: str) -> bool:
    return len({identity_of(graph, key) for key in keys}) == 1


@pytest.fixture
def ann(graph: Graph, tmp_path: Path) -> Graph:
    """C1 with cookie ck-1, on which ann's email was typed; resolved into one identity."""
    _resolved(
        graph,
        tmp_path,
        identify(1, user="C1", cookie="ck-1"),
        identify(2, cookie="ck-1", email="ann@example.org"),
    )
    assert _together(graph, "crm_id:C1", "cookie:ck-1", ANN)
    return graph


# -- effects ----------------------------------------------------------------------------------


def test_cut_splits_and_restore_merges_again(ann: Graph, tmp_path: Path) -> None:
    graph = ann
    before = identity_of(graph, "crm_id:C1")
    cut = _act(graph, tmp_path, "cut_link", "cookie:ck-1", "email: Ann@Example.org", reason="typo")
    assert cut.action == "cut_link" and cut.keys == ["cookie:ck-1", ANN]
    assert cut.reason == "typo" and cut.actor == ACTOR
    assert cut.before == [before]
    assert cut.identities == sorted({before, identity_of(graph, ANN)}) and len(cut.identities) == 2
    assert cut.report.plan["split"] == 1
    assert identity_of(graph, "crm_id:C1") == before  # the larger part keeps the id
    assert not _together(graph, "cookie:ck-1", ANN)
    _consistent(graph, tmp_path, cut)
    why = _why(graph, tmp_path, "cookie:ck-1", ANN)
    assert not why.same
    assert f"cookie:ck-1 - {ANN} was cut by a steward, {ACTOR}: typo" in why.summary

    restored = _act(graph, tmp_path, "restore_link", ANN, "cookie:ck-1")
    assert restored.identities == [before] and restored.report.plan["merged"] == 1
    assert _together(graph, "crm_id:C1", "cookie:ck-1", ANN)
    _consistent(graph, tmp_path, restored)
    rows = graph.read(
        "link", "MATCH ()-[r:LINKED]->() RETURN [k IN keys(r) WHERE k STARTS WITH 'cut'] AS cut"
    )
    assert all(row["cut"] == [] for row in rows)


def test_a_cut_that_leaves_another_path_splits_nothing(graph: Graph, tmp_path: Path) -> None:
    _resolved(
        graph,
        tmp_path,
        identify(1, user="C1", cookie="ck-1", email="ann@example.org"),
        identify(2, cookie="ck-1", email="ann@example.org"),
    )
    result = _act(graph, tmp_path, "cut_link", "crm_id:C1", ANN)
    assert len(result.identities) == 1 and result.report.plan["split"] == 0
    assert _together(graph, "crm_id:C1", "cookie:ck-1", ANN)
    _consistent(graph, tmp_path, result)


def test_force_merge_across_a_third_party_link(graph: Graph, tmp_path: Path) -> None:
    load_events(graph, tmp_path, "a", [identify(1, user="C1", cookie="ck-1")])
    load_cookie_sync(graph, tmp_path, "ck-1,D1\n")
    run(graph, tmp_path, as_of=_now())
    assert not _together(graph, "cookie:ck-1", "dmp_id:D1")
    result = _act(graph, tmp_path, "force_merge", "dmp_id:D1", "cookie:ck-1", reason="audited")
    assert len(result.before) == 2 and len(result.identities) == 1
    assert _together(graph, "crm_id:C1", "cookie:ck-1", "dmp_id:D1")
    _consistent(graph, tmp_path, result)
    why = _why(graph, tmp_path, "cookie:ck-1", "dmp_id:D1")
    assert why.same
    assert why.path[0].why == f"cookie:ck-1 - dmp_id:D1 forced by {ACTOR}: audited"
    assert f"forced by {ACTOR}: audited" in why.summary
    link = graph.read("link", "MATCH ()-[r:LINKED {forced: true}]->() RETURN properties(r) AS r")
    assert len(link) == 1 and link[0]["r"]["party"] == "third"  # the observed link, forced


def test_force_merge_across_an_expired_link(graph: Graph, tmp_path: Path) -> None:
    _resolved(
        graph,
        tmp_path,
        identify(1, user="C2", cookie="old", day=1),
        identify(2, user="C2", email="ann@example.org"),
    )
    assert not _together(graph, "crm_id:C2", "cookie:old")
    assert "expired" in _why(graph, tmp_path, "crm_id:C2", "cookie:old").summary
    result = _act(graph, tmp_path, "force_merge", "crm_id:C2", "cookie:old")
    assert _together(graph, "crm_id:C2", "cookie:old", ANN)
    _consistent(graph, tmp_path, result)


def test_force_merge_creates_a_link_where_there_is_none(ann: Graph, tmp_path: Path) -> None:
    graph = ann
    _resolved(graph, tmp_path, identify(3, user="C9", cookie="ck-9"))
    result = _act(graph, tmp_path, "force_merge", "email:ann@example.org", "cookie:ck-9")
    assert _together(graph, ANN, "cookie:ck-9")
    assert not _together(graph, "crm_id:C9", "crm_id:C1")  # one crm id per identity
    rows = graph.read(
        "created link",
        "MATCH (x:Identifier)-[r:LINKED {forced: true}]->(y:Identifier) "
        "RETURN x.key AS x, y.key AS y, r.party AS party, r.sources AS sources, "
        "r.count AS count, r.evidence AS evidence, r.forced_by AS by",
    )
    assert rows == [
        {
            "x": "cookie:ck-9",  # from the smaller key to the larger, as loads write links
            "y": ANN,
            "party": "first",
            "sources": ["steward"],
            "count": 1,
            "evidence": [],
            "by": ACTOR,
        }
    ]
    _consistent(graph, tmp_path, result)


def test_force_merge_with_a_shared_identifier(graph: Graph, tmp_path: Path) -> None:
    _resolved(
        graph,
        tmp_path,
        identify(1, user="C1", cookie="kiosk"),
        identify(2, user="C2", cookie="kiosk"),
    )
    assert stored(graph) == {
        frozenset({"crm_id:C1"}),
        frozenset({"crm_id:C2"}),
        frozenset({"cookie:kiosk"}),
    }
    result = _act(graph, tmp_path, "force_merge", "cookie:kiosk", "crm_id:C1")
    assert stored(graph) == {frozenset({"crm_id:C1", "cookie:kiosk"}), frozenset({"crm_id:C2"})}
    shared = graph.read("kiosk", "MATCH (i:Identifier {key: 'cookie:kiosk'}) RETURN i.shared AS s")
    assert shared == [{"s": "direct"}]  # still shared: it merges nothing else
    _consistent(graph, tmp_path, result)
    # a later batch on C2's side resolves incrementally to the same as a full recompute
    load_events(graph, tmp_path, "b", [identify(3, user="C2", cookie="ck-2")])
    assert run(graph, tmp_path, as_of=result.report.as_of).mode == "incremental"
    assert stored(graph) == recomputed(graph, tmp_path, as_of=result.report.as_of)


def test_forced_link_wins_a_limit_conflict(graph: Graph, tmp_path: Path) -> None:
    # C1 has 4 phones, one seen once: the phone limit (3) drops it, until a steward forces it
    phones = [f"+3361122330{i}" for i in range(4)]
    events = [identify(i, user="C1", phone=phones[i % 3]) for i in range(6)]
    _resolved(graph, tmp_path, *events, identify(9, user="C1", phone=phones[3]))
    weakest = f"phone:{phones[3]}"
    assert not _together(graph, "crm_id:C1", weakest)
    result = _act(graph, tmp_path, "force_merge", "crm_id:C1", weakest)
    assert _together(graph, "crm_id:C1", weakest)
    kept = next(group for group in stored(graph) if "crm_id:C1" in group)
    assert len(kept) == 4  # the crm id and 3 phones: one of the others went
    _consistent(graph, tmp_path, result)
    dropped = next(f"phone:{p}" for p in phones[:3] if f"phone:{p}" not in kept)
    why = _why(graph, tmp_path, "crm_id:C1", dropped)
    assert not why.same and "refused by the phone limit of 3" in why.summary


def test_a_shared_cookie_forced_to_one_customer(graph: Graph, tmp_path: Path) -> None:
    # ck-x was seen with C1; a steward says it is C2's: linked to both, it is shared from
    # then on, and joins C2 through the forced link only
    _resolved(
        graph,
        tmp_path,
        identify(1, user="C1", cookie="ck-x"),
        identify(3, user="C2", cookie="ck-2"),
    )
    result = _act(graph, tmp_path, "force_merge", "cookie:ck-x", "crm_id:C2")
    assert stored(graph) == {
        frozenset({"cookie:ck-x", "crm_id:C2", "cookie:ck-2"}),
        frozenset({"crm_id:C1"}),
    }
    _consistent(graph, tmp_path, result)
    why = _why(graph, tmp_path, "crm_id:C1", "cookie:ck-x")
    assert not why.same and "cookie:ck-x is a shared identifier" in why.summary


def test_a_forced_link_between_two_crm_ids_yields_to_their_limit(
    ann: Graph, tmp_path: Path
) -> None:
    graph = ann
    _resolved(graph, tmp_path, identify(3, user="C2"))
    result = _act(graph, tmp_path, "force_merge", "crm_id:C1", "crm_id:C2", reason="dup")
    assert len(result.identities) == 2
    why = _why(graph, tmp_path, "crm_id:C1", "crm_id:C2")
    assert "refused by the crm_id limit of 1" in why.summary
    assert f"forced by {ACTOR}: dup, but this rule is stronger" in why.summary
    _consistent(graph, tmp_path, result)


def test_block_isolates_and_unblock_rejoins(ann: Graph, tmp_path: Path) -> None:
    graph = ann
    blocked = _act(graph, tmp_path, "block_identifier", "cookie:ck-1", reason="kiosk")
    assert blocked.keys == ["cookie:ck-1"]
    assert stored(graph) == {
        frozenset({"crm_id:C1"}),
        frozenset({"cookie:ck-1"}),
        frozenset({ANN}),
    }
    _consistent(graph, tmp_path, blocked)
    why = _why(graph, tmp_path, "crm_id:C1", "cookie:ck-1")
    assert f"joins a blocked value: cookie:ck-1 blocked by {ACTOR}: kiosk" in why.summary
    with pytest.raises(InputError, match="a block is stronger than a forced link"):
        _act(graph, tmp_path, "force_merge", "cookie:ck-1", "crm_id:C1")

    unblocked = _act(graph, tmp_path, "unblock_identifier", "cookie:ck-1")
    assert unblocked.identities == [identity_of(graph, "crm_id:C1")]
    assert _together(graph, "crm_id:C1", "cookie:ck-1", ANN)
    _consistent(graph, tmp_path, unblocked)
    rows = graph.read("node", "MATCH (i:Identifier {key: 'cookie:ck-1'}) RETURN properties(i) AS p")
    assert not [k for k in rows[0]["p"] if k.startswith("blocked")]


def test_blocking_one_of_two_customers_releases_the_email_they_shared(
    graph: Graph, tmp_path: Path
) -> None:
    _resolved(
        graph,
        tmp_path,
        identify(1, user="C0", email="p0@ex.org"),
        identify(2, user="C1", email="p0@ex.org"),
    )
    assert len(stored(graph)) == 3  # the email is shared by two crm ids
    result = _act(graph, tmp_path, "block_identifier", "crm_id:C0")
    assert stored(graph) == {frozenset({"crm_id:C0"}), frozenset({"crm_id:C1", "email:p0@ex.org"})}
    _consistent(graph, tmp_path, result)


def test_a_cut_wins_over_a_forced_link_and_restore_brings_it_back(
    graph: Graph, tmp_path: Path
) -> None:
    _resolved(graph, tmp_path, identify(1, user="C1"), identify(2, cookie="ck-1"))
    _act(graph, tmp_path, "force_merge", "crm_id:C1", "cookie:ck-1")
    assert _together(graph, "crm_id:C1", "cookie:ck-1")
    cut = _act(graph, tmp_path, "cut_link", "crm_id:C1", "cookie:ck-1")
    assert len(cut.identities) == 2
    _consistent(graph, tmp_path, cut)
    restored = _act(graph, tmp_path, "restore_link", "crm_id:C1", "cookie:ck-1")
    assert len(restored.identities) == 1  # forced again
    _consistent(graph, tmp_path, restored)


# -- audit ----------------------------------------------------------------------------------


def test_every_action_leaves_an_audit_event(ann: Graph, tmp_path: Path) -> None:
    graph = ann
    result = _act(graph, tmp_path, "cut_link", "crm_id:C1", "cookie:ck-1", reason="wrong login")
    rows = graph.read(
        "steward events",
        """
        MATCH (e:IdentityEvent {kind: 'steward'})
        RETURN e.id AS id, e.action AS action, e.reason AS reason, e.actor AS actor,
               e.keys AS keys, e.run AS run, e.at IS NOT NULL AS at,
               COLLECT { MATCH (e)-[a:AFFECTED {role: 'before'}]->(p) RETURN p.id } AS before,
               COLLECT { MATCH (e)-[a:AFFECTED {role: 'after'}]->(p) RETURN p.id } AS after
        """,
    )
    assert len(rows) == 1
    event = rows[0]
    assert event["id"] == result.event_id and event["action"] == "cut_link"
    assert event["reason"] == "wrong login" and event["actor"] == ACTOR and event["at"]
    assert event["keys"] == ["crm_id:C1", "cookie:ck-1"]
    assert event["run"] == result.report.run
    assert sorted(event["before"]) == result.before
    assert sorted(event["after"]) == result.identities
    # the split the resolve wrote is the steward's, and says why
    splits = graph.read(
        "split", "MATCH (e:IdentityEvent {kind: 'split'}) RETURN e.actor AS actor, e.reason AS why"
    )
    assert len(splits) == 1 and splits[0]["actor"] == ACTOR
    assert splits[0]["why"] in {
        "crm_id:C1 - cookie:ck-1 cut by a steward",
        "cookie:ck-1 - crm_id:C1 cut by a steward",
    }
    batch = graph.read(
        "batch",
        "MATCH (b:Batch {source: 'steward'})-[:FROM]->(:Source {name: 'steward'}) "
        "RETURN b.status AS status, b.resolved_by AS run, b.event AS event",
    )
    assert batch == [{"status": "completed", "run": result.report.run, "event": result.event_id}]


# -- errors ---------------------------------------------------------------------------------


def test_errors_name_what_is_wrong_and_change_nothing(ann: Graph, tmp_path: Path) -> None:
    graph = ann
    _resolved(graph, tmp_path, identify(3, user="C2"))
    cases: list[tuple[type[Exception], str, tuple[str, ...], dict[str, Any]]] = [
        (NotFoundError, "unknown identifier 'crm_id:C9'", ("crm_id:C9",), {}),
        (InputError, "expected TYPE:VALUE", ("C1",), {}),
        (InputError, "needs a non-empty reason", ("crm_id:C1",), {"reason": "  "}),
        (
            InputError,
            "reason is 501 characters long: at most 500",
            ("crm_id:C1",),
            {"reason": "x" * 501},
        ),
        (InputError, "needs a non-empty actor", ("crm_id:C1",), {"actor": ""}),
    ]
    for error, message, keys, kw in cases:
        with pytest.raises(error, match=message):
            _act(graph, tmp_path, "block_identifier", *keys, **kw)
    with pytest.raises(NotFoundError, match="no link between crm_id:C1 and crm_id:C2"):
        _act(graph, tmp_path, "cut_link", "crm_id:C1", "crm_id:C2")
    with pytest.raises(NotFoundError, match="no link between"):
        _act(graph, tmp_path, "restore_link", "crm_id:C2", "crm_id:C1")
    with pytest.raises(NotFoundError, match="is not cut"):
        _act(graph, tmp_path, "restore_link", "crm_id:C1", "cookie:ck-1")
    with pytest.raises(NotFoundError, match="crm_id:C1 is not blocked"):
        _act(graph, tmp_path, "unblock_identifier", "crm_id:C1")
    with pytest.raises(InputError, match="the same identifier"):
        _act(graph, tmp_path, "force_merge", "crm_id:C1", " crm_id:C1")
    with pytest.raises(NotFoundError, match=r"unknown identifier 'email:nobody@example\.org'"):
        _act(graph, tmp_path, "force_merge", "crm_id:C1", "email:nobody@example.org")
    assert not graph.read("events", "MATCH (e:IdentityEvent {kind: 'steward'}) RETURN e")
    assert not graph.read("batches", "MATCH (b:Batch {source: 'steward'}) RETURN b")


def test_a_busy_resolve_leaves_the_action_recorded_for_the_next_run(
    ann: Graph, tmp_path: Path
) -> None:
    graph = ann
    lock = runs_store.ResolveLock(graph, "other-run")
    lock.pid = os.getppid()  # a live process holds it
    lock.acquire()
    try:
        with pytest.raises(ResolveBusyError, match=r"cut_link recorded .* at the next resolve"):
            _act(graph, tmp_path, "cut_link", "crm_id:C1", "cookie:ck-1", wait=0)
    finally:
        lock.release()
    assert _together(graph, "crm_id:C1", "cookie:ck-1")
    report = run(graph, tmp_path, as_of=_now())
    assert report.mode == "incremental" and report.plan["split"] == 1
    assert not _together(graph, "crm_id:C1", "cookie:ck-1")


# -- incremental equals full ------------------------------------------------------------------

_UNIVERSE = {
    "user": [f"C{i}" for i in range(3)],
    "cookie": [f"ck-{i}" for i in range(5)],
    "email": [f"p{i}@ex.org" for i in range(4)],
}
_SHAPES = [("user", "cookie"), ("user", "email"), ("cookie", "email"), ("user", "cookie", "email")]
_ACTIONS = ["cut_link", "restore_link", "force_merge", "block_identifier", "unblock_identifier"]


@st.composite
def _events(draw: st.DrawFn) -> dict[str, Any]:
    """Two or three colliding identifiers seen together on a day of 2026 (some cookie links
    have expired by now)."""
    event: dict[str, Any] = dict.fromkeys(_UNIVERSE)
    for field in draw(st.sampled_from(_SHAPES)):
        event[field] = draw(st.sampled_from(_UNIVERSE[field]))
    event["day"] = draw(st.integers(min_value=100, max_value=330))
    return event


def _identify(n: int, e: dict[str, Any]) -> dict[str, Any]:
    traits = {"email": e["email"]} if e["email"] else {}
    return identify(n, user=e["user"], cookie=e["cookie"], day=e["day"], **traits)


def _draw_action(graph: Graph, data: st.DataObject) -> tuple[str, ...]:
    """An action on what is in the graph: cuts of links, restores of cut ones, forced links
    between any two identifiers, blocks of any identifier, unblocks of blocked ones."""
    links = graph.read(
        "links", "MATCH (x)-[r:LINKED]->(y) RETURN x.key AS a, y.key AS b, r.cut AS cut"
    )
    nodes = graph.read("nodes", "MATCH (i:Identifier) RETURN i.key AS key, i.blocked AS blocked")
    action = data.draw(st.sampled_from(_ACTIONS))
    choices: list[tuple[str, ...]] = {
        "cut_link": [(r["a"], r["b"]) for r in links if not r["cut"]],
        "restore_link": [(r["a"], r["b"]) for r in links if r["cut"]],
        "force_merge": list(itertools.combinations(sorted(r["key"] for r in nodes), 2)),
        "block_identifier": [(r["key"],) for r in nodes],
        "unblock_identifier": [(r["key"],) for r in nodes if r["blocked"]],
    }[action]
    if not choices:
        return ()
    return (action, *data.draw(st.sampled_from(sorted(choices))))


@hypothesis_settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    first=st.lists(_events(), min_size=1, max_size=10),
    steps=st.integers(min_value=1, max_value=5),
    later=st.lists(_events(), max_size=3),
    data=st.data(),
)
def test_incremental_equals_full_after_each_action(
    graph: Graph,
    tmp_path_factory: pytest.TempPathFactory,
    first: list[dict[str, Any]],
    steps: int,
    later: list[dict[str, Any]],
    data: st.DataObject,
) -> None:
    graph.wipe()
    tmp_path = tmp_path_factory.mktemp("steward")
    counter = itertools.count()
    _resolved(graph, tmp_path, *(_identify(next(counter), e) for e in first))
    as_of = _now()
    for _ in range(steps):
        drawn = _draw_action(graph, data)
        if not drawn:
            continue
        action, *keys = drawn
        try:
            result = _act(graph, tmp_path, action, *keys)
        except InputError:  # a forced link to a blocked identifier
            event(f"{action} refused")
            continue
        event(f"{action} applied")
        _consistent(graph, tmp_path, result)
        as_of = result.report.as_of
    if later:
        load_events(graph, tmp_path, "later", [_identify(next(counter), e) for e in later])
        assert run(graph, tmp_path, as_of=as_of).mode == "incremental"
        assert stored(graph) == recomputed(graph, tmp_path, as_of=as_of)
        check_invariants(graph)


# -- the CLI ----------------------------------------------------------------------------------


def test_steward_commands(ann: Graph, neo4j_settings: Settings, tmp_path: Path) -> None:
    graph = ann
    env = cli_env(neo4j_settings, tmp_path)
    before = identity_of(graph, "crm_id:C1")
    cut = ok("steward", "cut", "cookie:ck-1", ANN, "--reason", "typo", env=env)
    assert f"cut_link cookie:ck-1 - {ANN} by cli:" in cut
    assert f"identities before: {before}" in cut
    assert f"identities after:  {', '.join(sorted({before, identity_of(graph, ANN)}))}" in cut
    assert "split" in cut
    restored = ok("steward", "restore", "cookie:ck-1", ANN, "--reason", "fine", env=env)
    assert f"identities after:  {before}" in restored
    blocked = ok("steward", "block", "cookie:ck-1", "--reason", "kiosk", env=env)
    assert "block_identifier cookie:ck-1" in blocked
    assert not _together(graph, "crm_id:C1", "cookie:ck-1")
    ok("steward", "unblock", "cookie:ck-1", "--reason", "not a kiosk", env=env)
    assert _together(graph, "crm_id:C1", "cookie:ck-1", ANN)
    load_events(graph, tmp_path, "b", [identify(3, cookie="ck-9")])
    forced = ok("steward", "force-merge", "cookie:ck-9", "crm_id:C1", "--reason", "x", env=env)
    assert f"identities after:  {before}" in forced
    actors = graph.read(
        "actors", "MATCH (e:IdentityEvent {kind: 'steward'}) RETURN DISTINCT e.actor AS actor"
    )
    assert len(actors) == 1 and str(actors[0]["actor"]).startswith("cli:")

    failed = idgraph("steward", "unblock", "crm_id:C1", "--reason", "r", env=env)
    assert failed.returncode == 1
    assert failed.stderr.startswith("error: crm_id:C1 is not blocked")
    missing = idgraph("steward", "cut", "crm_id:C1", ANN, env=env)
    assert missing.returncode == 2 and "--reason" in missing.stderr
