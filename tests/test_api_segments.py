"""Segments through a real ``idgraph serve``: the marketer's whole round (preview, create,
refresh, members as profiles, changes, update, delete), validation errors with their paths,
roles, conflicts and paging."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from identity.store.driver import Graph
from identity.store.schema import init_schema
from tests.api_server import ADMIN, MARKETER, READER, STEWARD, gql
from tests.marketing import shoppers
from tests.resolving import identity_of, load_events, run

pytestmark = pytest.mark.neo4j

FR_BUYERS = {
    "all": [
        {"trait": "country", "in": ["FR", "BE"]},
        {"consent": "marketing"},
        {"event": "Order Completed"},
    ]
}
SEGMENT = """fragment S on Segment { id name description definition size refreshedAt stale
  createdBy createdAt }"""
CREATE = (
    SEGMENT
    + """
mutation($name: String!, $d: SegmentConditionInput!) {
  createSegment(name: $name, definition: $d, description: "test") { ...S } }"""
)
REFRESH = """mutation($id: ID!) { refreshSegment(id: $id) {
  segment { id size refreshedAt stale } refresh { id entered left size ms at } } }"""


def people(graph: Graph, tmp_path: Path) -> dict[str, str]:
    init_schema(graph)
    load_events(
        graph,
        tmp_path,
        "people",
        shoppers(
            [
                {"email": "ann@example.org", "country": "FR", "consent_marketing": True},
                {"country": "BE", "consent_marketing": True},
                {"country": "DE", "consent_marketing": True},
                {"country": "FR"},
            ],
            [(1, 275), (2, 275), (3, 275), (4, 275)],
        ),
    )
    run(graph, tmp_path)
    return {n: identity_of(graph, f"crm_id:C{i}") for i, n in enumerate("abcd", 1)}


def ok(body: dict[str, Any]) -> dict[str, Any]:
    assert "errors" not in body, body
    data: dict[str, Any] = body["data"]
    return data


def test_marketer_round_trip(api: str, graph: Graph, tmp_path: Path) -> None:
    ids = people(graph, tmp_path)
    preview = ok(
        gql(
            api,
            "mutation($d: SegmentConditionInput!) { previewSegment(definition: $d, sample: 1) "
            "{ size sample { id traits } } }",
            {"d": FR_BUYERS},
            MARKETER,
        )
    )["previewSegment"]
    assert preview["size"] == 2 and len(preview["sample"]) == 1
    assert preview["sample"][0]["traits"]["country"] in ("FR", "BE")

    made = ok(gql(api, CREATE, {"name": "fr-be buyers", "d": FR_BUYERS}, MARKETER))
    seg = made["createSegment"]
    assert seg["id"].startswith("seg-") and seg["definition"] == FR_BUYERS
    assert seg["size"] == 0 and seg["refreshedAt"] is None and seg["stale"]
    assert seg["createdBy"].startswith("marketer-") and "key" not in seg["createdBy"]

    done = ok(gql(api, REFRESH, {"id": seg["id"]}, MARKETER))["refreshSegment"]
    assert (done["refresh"]["entered"], done["refresh"]["left"], done["refresh"]["size"]) == (
        2,
        0,
        2,
    )
    assert done["segment"]["size"] == 2 and not done["segment"]["stale"]
    since = done["refresh"]["at"]

    query = """query($id: ID!, $after: String, $since: DateTime!) { segment(id: $id) {
      name size members(first: 1, after: $after) { totalCount pageInfo { hasNextPage endCursor }
        edges { cursor since node { id size identifiers(types: ["email"]) { totalCount } } } }
      changes(since: $since) { edges { node { identityId change at } } }
      refreshes(last: 5) { entered left size } } }"""
    page1 = ok(gql(api, query, {"id": seg["id"], "since": since}, MARKETER))["segment"]
    members = page1["members"]
    assert members["totalCount"] == 2 and members["pageInfo"]["hasNextPage"]
    cursor = members["pageInfo"]["endCursor"]
    page2 = ok(gql(api, query, {"id": "fr-be buyers", "after": cursor, "since": since}, MARKETER))[
        "segment"
    ]["members"]
    assert not page2["pageInfo"]["hasNextPage"]
    got = [e["node"]["id"] for e in members["edges"] + page2["edges"]]
    assert got == sorted([ids["a"], ids["b"]])
    ann = next(e for e in members["edges"] + page2["edges"] if e["node"]["id"] == ids["a"])
    assert ann["node"]["identifiers"]["totalCount"] == 1
    assert page1["changes"]["edges"] == [] and page1["refreshes"] == [
        {"entered": 2, "left": 0, "size": 2}
    ]

    # Germany joins: the definition changes, members stay until the refresh
    wider = {"all": [{"trait": "country", "in": ["FR", "BE", "DE"]}, {"consent": "marketing"}]}
    changed = ok(
        gql(
            api,
            "mutation($id: ID!, $d: SegmentConditionInput) { updateSegment(id: $id, "
            'definition: $d, name: "buyers") { name definition size stale } }',
            {"id": seg["id"], "d": wider},
            MARKETER,
        )
    )["updateSegment"]
    assert changed == {"name": "buyers", "definition": wider, "size": 2, "stale": True}
    again = ok(gql(api, REFRESH, {"id": seg["id"]}, MARKETER))["refreshSegment"]["refresh"]
    assert (again["entered"], again["left"], again["size"]) == (1, 0, 3)
    feed = ok(gql(api, query, {"id": seg["id"], "since": since}, MARKETER))["segment"]["changes"]
    assert [e["node"]["identityId"] for e in feed["edges"]] == [ids["c"]]
    assert feed["edges"][0]["node"]["change"] == "entered"

    listed = ok(gql(api, "{ segments { id name size } }", None, ADMIN))["segments"]
    assert listed == [{"id": seg["id"], "name": "buyers", "size": 3}]
    gone = ok(
        gql(api, "mutation($id: ID!) { deleteSegment(id: $id) }", {"id": seg["id"]}, MARKETER)
    )
    assert gone["deleteSegment"] == seg["id"]
    missing = gql(api, "query($id: ID!) { segment(id: $id) { id } }", {"id": seg["id"]}, MARKETER)
    assert missing["errors"][0]["extensions"]["code"] == "NOT_FOUND"


def test_invalid_definitions_come_back_with_their_paths(
    api: str, graph: Graph, tmp_path: Path
) -> None:
    init_schema(graph)
    bad = {
        "any": [
            {"trait": "country", "eq": "FR", "gt": 3},
            {"not": {"has_identifier": "fax"}},
            {"event": "Order Completed", "within_days": 0},
            {"trait": "age", "eq": None},
        ]
    }
    body = gql(api, CREATE, {"name": "bad", "d": bad}, MARKETER)
    [error] = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    for path in (
        "$.any[0]:",
        "$.any[1].not.has_identifier:",
        "$.any[2].within_days:",
        "$.any[3].eq:",
    ):
        assert path in error["message"], error["message"]
    assert "unknown identifier type 'fax'" in error["message"]
    body = gql(api, CREATE, {"name": "bad", "d": {}}, MARKETER)
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "$: no condition" in body["errors"][0]["message"]
    assert ok(gql(api, "{ segments { id } }", None, MARKETER))["segments"] == []


def test_roles_conflicts_and_bad_cursors(api: str, graph: Graph, tmp_path: Path) -> None:
    init_schema(graph)
    for key in (READER, STEWARD):
        body = gql(api, "{ segments { id } }", None, key)
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        body = gql(api, CREATE, {"name": "x", "d": {"consent": "ads"}}, key)
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert (
        gql(api, "{ segments { id } }", None, None)["errors"][0]["extensions"]["code"]
        == "UNAUTHENTICATED"
    )
    seg = ok(gql(api, CREATE, {"name": "ads", "d": {"consent": "ads"}}, MARKETER))["createSegment"]
    taken = gql(api, CREATE, {"name": "ads", "d": {"consent": "ads"}}, MARKETER)
    assert taken["errors"][0]["extensions"]["code"] == "CONFLICT"
    assert "'ads' is taken" in taken["errors"][0]["message"]
    graph.run(
        "hold", "MATCH (s:Segment) SET s.refreshing = 'other', s.refreshing_since = datetime()"
    )
    busy = gql(api, REFRESH, {"id": seg["id"]}, MARKETER)
    assert busy["errors"][0]["extensions"]["code"] == "CONFLICT"
    assert "is being refreshed" in busy["errors"][0]["message"]
    for args in (
        'members(after: "%%%") { totalCount }',
        'changes(since: "2026-01-01T00:00:00Z", after: "WzFd") { edges { cursor } }',
        "members(first: 100000) { totalCount }",
    ):
        body = gql(
            api,
            "query($id: ID!) { segment(id: $id) { " + args + " } }",
            {"id": seg["id"]},
            MARKETER,
        )
        assert body["errors"][0]["extensions"]["code"] in ("BAD_USER_INPUT", "QUERY_TOO_COMPLEX")
