"""Segments against a real Neo4j: the compiled Cypher agrees with the reference semantics,
refresh writes only changes and records them, changes(since) is the net sync list, CRUD
and the refresh guard. Profiles are written directly as Identity properties here."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from identity.config import Settings
from identity.errors import ConflictError, InputError, NotFoundError
from identity.policy import Policy
from identity.segments import service as segments
from identity.segments.language import SegmentDefinitionError, matches, parse
from identity.store import segments as store
from identity.store.driver import Graph
from identity.store.schema import init_schema
from identity.store.segment_query import compile_condition
from identity.store.segments import BATCH_ROWS
from tests.api_data import track
from tests.cli import idgraph, server_env
from tests.marketing import shoppers, trees
from tests.resolving import AS_OF, identify, identity_of, load_events, run
from tests.services import services

pytestmark = pytest.mark.neo4j


@pytest.fixture
def db(graph: Graph) -> Graph:
    """The wiped database with its schema (the unique segment name among it)."""
    init_schema(graph)
    return graph


POLICY = Policy()
NOW = datetime(2026, 11, 1, 12, tzinfo=UTC)
FR = {"trait": "country", "eq": "FR"}


def put(graph: Graph, id: str, status: str = "active", **props: Any) -> None:
    """An identity with profile properties (``trait__country`` is ``trait.country``)."""
    graph.run(
        "test identity",
        "MERGE (p:Identity {id: $id}) SET p = $props, p.id = $id, p.status = $status",
        {"id": id, "status": status, "props": {k.replace("__", "."): v for k, v in props.items()}},
    )


def population(seed: int = 7, n: int = 60) -> dict[str, dict[str, Any]]:
    rnd = random.Random(seed)
    people: dict[str, dict[str, Any]] = {}
    for i in range(n):
        p: dict[str, Any] = {}

        def maybe(key: str, *values: Any, p: dict[str, Any] = p) -> None:
            choice = rnd.choice([*values, None])
            if choice is not None:
                p[key] = choice

        maybe("trait.country", "FR", "DE", "fr", "FRANCE")
        maybe("trait.age", 20, 30, 30.0, 45, "40", True)
        maybe("trait.tier", "gold", "silver", 1)
        maybe("trait.vip", True, False)
        maybe("consent.marketing", True, False)
        maybe("consent.ads", True, False, 1)
        maybe("count.email", 1, 2, 3)
        maybe("count.cookie", 1, 4)
        maybe("event_count.Buy", 1, 2, 5)
        if "event_count.Buy" in p:
            p["event_last.Buy"] = NOW - timedelta(days=rnd.choice([1, 10, 29, 31, 90]))
        maybe("dmp.travel", NOW + timedelta(days=3), NOW - timedelta(days=3))
        maybe("last_seen", NOW - timedelta(days=2), NOW - timedelta(days=40))
        people[f"id-{i:03}"] = p
    return people


def write(graph: Graph, people: dict[str, dict[str, Any]]) -> None:
    graph.run(
        "test population",
        "UNWIND $rows AS row CREATE (p:Identity) SET p = row.props, p.id = row.id, "
        "p.status = 'active'",
        {"rows": [{"id": k, "props": v} for k, v in people.items()]},
    )
    # a merged identity that matches everything must never count
    put(
        graph,
        "merged-1",
        "merged",
        **{k.replace(".", "__"): v for k, v in people["id-000"].items()},
    )


small_names = st.sampled_from(["country", "age", "tier", "vip", "nope"])
values = st.sampled_from(["FR", "DE", "fr", "gold", "40", 30, 30.5, 45, 1, True, False])
leaves = st.one_of(
    st.builds(
        lambda n, o, v: {"trait": n, o: v}, small_names, st.sampled_from(["eq", "neq"]), values
    ),
    st.builds(
        lambda n, v: {"trait": n, "in": v}, small_names, st.lists(values, min_size=1, max_size=3)
    ),
    st.builds(
        lambda n, o, v: {"trait": n, o: v},
        small_names,
        st.sampled_from(["gt", "gte", "lt", "lte"]),
        st.sampled_from(["FR", "E", "35", 20, 30, 44.5]),
    ),
    st.builds(lambda n, v: {"trait": n, "contains": v}, small_names, st.sampled_from(["R", "ol"])),
    st.builds(lambda n, v: {"trait": n, "exists": v}, small_names, st.booleans()),
    st.builds(
        lambda t, c: {"has_identifier": t, "count_gte": c},
        st.sampled_from(["email", "cookie", "phone"]),
        st.integers(1, 4),
    ),
    st.builds(
        lambda c, d: {"event": "Buy", "count_gte": c, "within_days": d},
        st.integers(1, 3),
        st.sampled_from([5, 30, 60]),
    ),
    st.builds(lambda n: {"event": n}, st.sampled_from(["Buy", "Sell"])),
    st.builds(lambda n: {"dmp_segment": n}, st.sampled_from(["travel", "autos"])),
    st.builds(lambda n: {"consent": n}, st.sampled_from(["marketing", "ads"])),
    st.builds(lambda d: {"last_seen_within_days": d}, st.sampled_from([7, 60])),
)
definitions = trees(leaves, 8)


def test_neo4j_count_equals_the_reference_semantics(graph: Graph) -> None:
    people = population()
    write(graph, people)

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(definitions)
    def check(definition: dict[str, Any]) -> None:
        tree = parse(definition, POLICY.types)
        expected = sorted(k for k, p in people.items() if matches(tree, p, NOW))
        where, params = compile_condition(tree, NOW)
        found = graph.read(
            "t",
            "MATCH (p:Identity {status: 'active'}) WHERE " + where + " RETURN p.id AS id",
            params,
        )
        assert sorted(r["id"] for r in found) == expected, (definition, where, params)
        assert segments.estimate(services(graph, policy=POLICY), definition, now=NOW) == len(
            expected
        )

    check()


@pytest.mark.parametrize(
    ("definition", "expected"),
    [
        ({"trait": "country", "eq": "FR"}, {"a"}),
        ({"trait": "country", "neq": "FR"}, {"b"}),
        ({"not": {"trait": "country", "eq": "FR"}}, {"b", "c"}),
        ({"trait": "country", "in": ["DE", "IT"]}, {"b"}),
        ({"trait": "age", "gt": 30}, {"b"}),
        ({"trait": "age", "lte": 30}, {"a"}),
        ({"trait": "email", "contains": "@example.org"}, {"a"}),
        ({"trait": "email", "exists": False}, {"c"}),
        ({"has_identifier": "email", "count_gte": 2}, {"b"}),
        ({"event": "Order Completed", "count_gte": 2, "within_days": 30}, {"a"}),
        ({"event": "Order Completed"}, {"a", "b"}),
        ({"dmp_segment": "travel_intenders"}, {"c"}),
        ({"consent": "marketing"}, {"a"}),
        ({"last_seen_within_days": 7}, {"a", "c"}),
    ],
)
def test_each_condition_kind(graph: Graph, definition: dict[str, Any], expected: set[str]) -> None:
    day = timedelta(days=1)
    put(
        graph,
        "a",
        trait__country="FR",
        trait__age=30,
        trait__email="ann@example.org",
        count__email=1,
        consent__marketing=True,
        last_seen=NOW - day,
    )
    put(
        graph,
        "b",
        trait__country="DE",
        trait__age=41,
        trait__email=12,
        count__email=2,
        consent__marketing=False,
        last_seen=NOW - 9 * day,
    )
    put(graph, "c", last_seen=NOW - 2 * day)
    graph.run(
        "events and dmp",
        "MATCH (a:Identity {id: 'a'}), (b:Identity {id: 'b'}), (c:Identity {id: 'c'}) "
        "SET a.`event_count.Order Completed` = 3, a.`event_last.Order Completed` = $recent, "
        "b.`event_count.Order Completed` = 5, b.`event_last.Order Completed` = $old, "
        "c.`dmp.travel_intenders` = $later, b.`dmp.travel_intenders` = $earlier",
        {"recent": NOW - 3 * day, "old": NOW - 40 * day, "later": NOW + day, "earlier": NOW - day},
    )
    put(graph, "gone", "merged", trait__country="FR", consent__marketing=True)
    preview = segments.preview(services(graph, policy=POLICY), definition, now=NOW)
    assert {i for i, _ in preview.sample} == expected
    assert preview.size == len(expected)


def _members(graph: Graph, segment: str) -> dict[str, Any]:
    rows = graph.read(
        "t",
        "MATCH (:Segment {id: $id})-[r:INCLUDES]->(p) RETURN p.id AS id, r.since AS since",
        {"id": segment},
    )
    return {r["id"]: r["since"] for r in rows}


def test_refresh_writes_only_changes_and_the_sync_list_replays(graph: Graph) -> None:
    for i in range(6):
        put(graph, f"p{i}", trait__country="FR" if i < 4 else "DE")
    seg = segments.create_segment(
        services(graph, policy=POLICY, actor="t"),
        name="French",
        definition=FR,
        now=NOW - timedelta(days=1),
    )
    assert seg.id.startswith("seg-") and len(seg.id) == 16 and seg.stale and seg.size == 0
    t1 = NOW
    first = segments.refresh_segment(services(graph, policy=POLICY), seg.id, now=t1)
    assert (first.entered, first.left, first.size) == (4, 0, 4)
    copy = set(_members(graph, seg.id))
    assert copy == {"p0", "p1", "p2", "p3"}
    before = _members(graph, seg.id)

    # p0 moves to Germany, p4 to France, p1 is merged away; p2 and p3 stay untouched
    put(graph, "p0", trait__country="DE")
    put(graph, "p4", trait__country="FR")
    put(graph, "p1", "merged", trait__country="FR")
    t2 = NOW + timedelta(hours=1)
    second = segments.refresh_segment(services(graph, policy=POLICY), "French", now=t2)
    assert (second.entered, second.left, second.size) == (1, 2, 3)
    after = _members(graph, seg.id)
    assert set(after) == {"p2", "p3", "p4"}
    assert after["p2"] == before["p2"] and after["p3"] == before["p3"]  # not rewritten

    changes = segments.changes(services(graph), seg.id, since=t1)
    assert [(c.identity, c.change) for c in changes] == [
        ("p0", "left"),
        ("p1", "left"),
        ("p4", "entered"),
    ]
    for c in changes:  # the net sync list turns the copy at t1 into the membership now
        (copy.add if c.change == "entered" else copy.discard)(c.identity)
    assert copy == set(after)
    assert segments.changes(services(graph), seg.id, since=t2) == []

    # p0 comes back: its LEFT goes, INCLUDES comes with the new time
    put(graph, "p0", trait__country="FR")
    third = segments.refresh_segment(
        services(graph, policy=POLICY), seg.id, now=t2 + timedelta(hours=1)
    )
    assert (third.entered, third.left, third.size) == (1, 0, 4)
    left = graph.read("t", "MATCH (:Segment)-[l:LEFT]->(p) RETURN p.id AS id ORDER BY id")
    assert [r["id"] for r in left] == ["p1"]
    nothing = segments.refresh_segment(
        services(graph, policy=POLICY), seg.id, now=t2 + timedelta(hours=2)
    )
    assert (nothing.entered, nothing.left, nothing.size) == (0, 0, 4)

    history = segments.refreshes(services(graph), seg.id, last=10)
    assert [(r.entered, r.left, r.size) for r in history] == [
        (0, 0, 4),
        (1, 0, 4),
        (1, 2, 3),
        (4, 0, 4),
    ]
    shown = segments.get_segment(services(graph), seg.id)
    assert shown.size == 4 and shown.refreshed_at == t2 + timedelta(hours=2) and not shown.stale


def test_changes_and_members_paginate_by_keyset(graph: Graph) -> None:
    for i in range(7):
        put(graph, f"p{i}", consent__marketing=True)
    seg = segments.create_segment(
        services(graph, policy=POLICY, actor="t"), name="m", definition={"consent": "marketing"}
    )
    segments.refresh_segment(services(graph, policy=POLICY), seg.id, now=NOW)
    put(graph, "p2", consent__marketing=False)
    put(graph, "p9", consent__marketing=True)
    segments.refresh_segment(services(graph, policy=POLICY), seg.id, now=NOW + timedelta(minutes=5))
    seen, after = [], None
    while True:
        page = segments.changes(services(graph), seg.id, NOW - timedelta(days=1), after, limit=3)
        seen += [(c.identity, c.change) for c in page]
        if len(page) < 3:
            break
        after = (int(page[-1].at.timestamp() * 1000), page[-1].identity)
    assert seen == [(f"p{i}", "entered") for i in (0, 1, 3, 4, 5, 6)] + [
        ("p2", "left"),
        ("p9", "entered"),
    ]
    ids, cursor = [], None
    while True:
        rows = segments.members(services(graph), seg.id, cursor, 4)
        ids += [r[0][0] for r in rows]
        if len(rows) < 4:
            break
        cursor = rows[-1][0][0]
    assert ids == ["p0", "p1", "p3", "p4", "p5", "p6", "p9"]
    # both ways of paging (from the segment, along the identity id index) give the same pages
    for start in (None, "p1", "p6", "p9"):
        pages = [store.members(graph, seg.id, start, 3, along_index=way) for way in (False, True)]
        assert pages[0] == pages[1], start
    with pytest.raises(InputError, match="time zone"):
        segments.changes(services(graph), seg.id, datetime(2026, 1, 1))


def test_crud_names_errors_and_delete(db: Graph) -> None:
    graph = db
    put(graph, "p0", trait__country="FR")
    seg = segments.create_segment(
        services(graph, policy=POLICY, actor="alice"),
        name="French",
        definition=FR,
        description="FR",
    )
    assert seg.created_by == "alice" and seg.definition == FR
    with pytest.raises(ConflictError, match="'French' is taken"):
        segments.create_segment(
            services(graph, policy=POLICY, actor="t"), name="French", definition=FR
        )
    other = segments.create_segment(
        services(graph, policy=POLICY, actor="t"), name="Other", definition=FR
    )
    with pytest.raises(ConflictError, match="'Other' is taken"):
        segments.update_segment(services(graph, policy=POLICY), seg.id, name="Other")
    with pytest.raises(InputError, match="name must be 1 to"):
        segments.create_segment(services(graph, policy=POLICY, actor="t"), name=" ", definition=FR)
    with pytest.raises(SegmentDefinitionError, match=r"\$\.has_identifier"):
        segments.create_segment(
            services(graph, policy=POLICY, actor="t"),
            name="x",
            definition={"has_identifier": "fax"},
        )
    segments.refresh_segment(services(graph, policy=POLICY), seg.id, now=NOW)
    renamed = segments.update_segment(
        services(graph, policy=POLICY),
        seg.id,
        name="Francophiles",
        definition={"trait": "country", "in": ["FR", "BE"]},
        now=NOW + timedelta(minutes=1),
    )
    assert renamed.name == "Francophiles" and renamed.description == "FR"
    assert renamed.stale and renamed.size == 1 and set(_members(graph, seg.id)) == {"p0"}
    same = segments.update_segment(
        services(graph, policy=POLICY), seg.id, description="new", now=NOW + timedelta(minutes=2)
    )
    assert same.definition_at == renamed.definition_at
    assert [s.name for s in segments.list_segments(services(graph))] == ["Francophiles", "Other"]
    gone = segments.delete_segment(services(graph), "Francophiles")
    assert gone.id == seg.id
    left = graph.read("t", "MATCH (s:Segment) RETURN s.id AS id")
    assert [r["id"] for r in left] == [other.id]
    assert graph.read("t", "MATCH ()-[r:INCLUDES|LEFT]->() RETURN count(r) AS n")[0]["n"] == 0
    assert graph.read("t", "MATCH (r:SegmentRefresh) RETURN count(r) AS n")[0]["n"] == 0
    with pytest.raises(NotFoundError, match="no segment"):
        segments.get_segment(services(graph), seg.id)
    with pytest.raises(NotFoundError):
        segments.refresh_segment(services(graph, policy=POLICY), seg.id)


def test_a_running_refresh_blocks_another_until_it_goes_stale(graph: Graph) -> None:
    seg = segments.create_segment(
        services(graph, policy=POLICY, actor="t"), name="s", definition=FR
    )
    store.lock(graph, seg.id, "other-run", datetime.now(UTC), datetime.now(UTC))
    with pytest.raises(ConflictError, match="segment 's' is being refreshed"):
        segments.refresh_segment(services(graph, policy=POLICY), seg.id)
    graph.run(  # the holder went silent an hour ago
        "t",
        "MATCH (s:Segment) SET s.refreshing_since = $old",
        {"old": datetime.now(UTC) - timedelta(hours=1)},
    )
    done = segments.refresh_segment(
        services(graph, policy=POLICY), seg.id, stale_after=timedelta(minutes=30)
    )
    assert done.size == 0  # the silent holder was taken over
    row = graph.read("t", "MATCH (s:Segment) RETURN s.refreshing AS r")[0]
    assert row["r"] is None  # and the lock released


def test_refresh_in_batches_over_many_identities(graph: Graph) -> None:
    n = 2 * BATCH_ROWS + 500
    graph.run_autocommit(
        "many",
        "UNWIND range(0, $n - 1) AS i CALL (i) { CREATE (:Identity {id: 'x' + i, "
        "status: 'active', `count.email`: i % 3}) } IN TRANSACTIONS OF 10000 ROWS",
        {"n": n},
    )
    seg = segments.create_segment(
        services(graph, policy=POLICY, actor="t"),
        name="emails",
        definition={"has_identifier": "email"},
    )
    done = segments.refresh_segment(services(graph, policy=POLICY), seg.id)
    expected = sum(1 for i in range(n) if i % 3)
    assert (done.entered, done.left, done.size) == (expected, 0, expected)
    graph.run("t", "MATCH (p:Identity) WHERE p.`count.email` = 1 SET p.`count.email` = 0")
    again = segments.refresh_segment(services(graph, policy=POLICY), seg.id)
    assert (again.entered, again.left) == (0, sum(1 for i in range(n) if i % 3 == 1))


def _outer(plan: Any) -> list[str]:
    """The operators that stream the outer rows: all but the per-row subquery (the right
    side of TransactionApply), whose buffers hold one identity's rows at most."""
    name = plan["operatorType"].split("@")[0]
    children = plan.get("children", [])
    if name == "TransactionApply":
        children = children[:1]
    return [name] + [op for child in children for op in _outer(child)]


def test_refresh_plans_stream_without_eager(graph: Graph) -> None:
    """An Eager operator on the outer rows would hold every row of a refresh in memory."""
    where, params = compile_condition(parse({"any": [FR, {"consent": "ads"}]}, POLICY.types), NOW)
    for query in (store.left_query(where), store.entered_query(where)):
        with graph.driver.session(database=graph.database) as session:
            summary = session.run("EXPLAIN " + query, {**params, "segment": "x", "now": NOW})
            plan = summary.consume().plan
        assert plan is not None
        operators = _outer(plan)
        assert "TransactionApply" in operators and "Eager" not in operators, operators


def test_end_to_end_on_resolved_profiles(db: Graph, tmp_path: Path) -> None:
    """Segment events loaded and resolved (the resolve materializes profiles), a segment
    refreshed, then a later load changes traits: one leaves, one enters."""
    graph = db
    load_events(
        graph,
        tmp_path,
        "first",
        shoppers(
            [
                {"email": "ann@example.org", "country": "FR", "consent_marketing": True},
                {"country": "FR", "consent_marketing": False},
                {"country": "DE", "consent_marketing": True},
            ],
            [(1, 275), (1, 290), (2, 275), (3, 275)],
        ),
    )
    run(graph, tmp_path)
    ann, bob = identity_of(graph, "crm_id:C1"), identity_of(graph, "crm_id:C2")
    definition = {
        "all": [
            {"trait": "country", "eq": "FR"},
            {"consent": "marketing"},
            {"event": "Order Completed", "count_gte": 2, "within_days": 30},
        ]
    }
    at = AS_OF + timedelta(days=1)
    assert segments.estimate(services(graph, policy=POLICY), definition, now=at) == 1
    seg = segments.create_segment(
        services(graph, policy=POLICY, actor="t"),
        name="fr-buyers",
        definition=definition,
        now=AS_OF,
    )
    first = segments.refresh_segment(services(graph, policy=POLICY), seg.id, now=at)
    assert (first.entered, first.left, first.size) == (1, 0, 1)
    assert set(_members(graph, seg.id)) == {ann}
    reachable = {"all": [{"has_identifier": "email"}, {"consent": "marketing"}]}
    assert segments.preview(services(graph, policy=POLICY), reachable, now=at).sample == [
        (ann, {"consent_marketing": True, "country": "FR"})
    ]

    load_events(
        graph,
        tmp_path,
        "later",
        [
            identify(8, user="C1", country="BE", day=300),
            identify(9, user="C2", consent_marketing=True, day=300),
            track(10, "ck2", "Order Completed", day=301),
        ],
    )
    run(graph, tmp_path)
    later = at + timedelta(days=1)
    second = segments.refresh_segment(services(graph, policy=POLICY), seg.id, now=later)
    assert (second.entered, second.left, second.size) == (1, 1, 1)
    assert set(_members(graph, seg.id)) == {bob}
    assert [
        (c.identity, c.change) for c in segments.changes(services(graph), seg.id, since=at)
    ] == sorted([(ann, "left"), (bob, "entered")], key=lambda c: c[0])


def test_the_cli_round(db: Graph, neo4j_settings: Settings, tmp_path: Path) -> None:
    put(db, "p1", trait__country="FR", consent__marketing=True)
    put(db, "p2", trait__country="DE", consent__marketing=True)
    env = server_env(neo4j_settings)
    definition = tmp_path / "fr.json"
    definition.write_text('{"all": [{"trait": "country", "eq": "FR"}, {"consent": "marketing"}]}')

    def cli(*args: str) -> str:
        result = idgraph("segment", *args, env=env)
        assert result.returncode == 0, result.stderr
        return result.stdout

    assert cli("estimate", f"@{definition}").strip() == "1"
    assert "p1" in cli("preview", '{"consent": "marketing"}', "--sample", "5")
    created = cli("create", "French", "--definition", f"@{definition}", "--description", "fr")
    seg = created.split()[0]
    assert seg.startswith("seg-") and "refreshed never" in created
    assert "1 entered, 0 left, size 1" in cli("refresh", "French")
    assert cli("members", seg).split()[0] == "p1"
    put(db, "p2", trait__country="FR", consent__marketing=True)
    assert "1 entered, 0 left, size 2" in cli("refresh", seg)
    assert "+ p2" in cli("changes", "French", "--since", "2000-01-01T00:00:00Z")
    assert "French" in cli("list") and "+1 -0 = 2" in cli("show", seg)
    updated = cli("update", seg, "--definition", '{"trait": "country", "eq": "DE"}')
    assert "definition changed since" in updated
    bad = idgraph("segment", "create", "x", "--definition", '{"trait": "a"}', env=env)
    assert bad.returncode == 1 and "$: a trait condition needs exactly one operator" in bad.stderr
    assert "deleted" in cli("delete", "French")
    assert idgraph("segment", "show", seg, env=env).returncode == 1
