"""GraphQL queries for apps and stewards, through a real server, with httpx and gql."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gql import Client, GraphQLRequest
from gql.transport.httpx import HTTPXTransport

from identity.store.driver import Graph
from tests.api_data import load_people
from tests.api_server import READER, STEWARD, gql
from tests.resolving import identify, load_events, run

pytestmark = pytest.mark.neo4j

PROFILE = """
query Profile($type: String!, $value: String!, $first: Int = 50, $after: String) {
  profile(identifier: {type: $type, value: $value}) {
    id requestedId redirected status createdAt updatedAt size
    identifiers(first: $first, after: $after) {
      totalCount
      pageInfo { hasNextPage endCursor }
      edges { cursor node { key type value firstSeen lastSeen seen sources } }
    }
    traits { name value source observedAt identifier }
    events { name count firstAt lastAt }
    history { edges { node { kind reason actor identities { id role } } } }
  }
}
"""


@pytest.fixture
def people(graph: Graph, tmp_path: Path) -> dict[str, str]:
    return load_people(graph, tmp_path)


@pytest.fixture
def client(api: str) -> Iterator[Client]:
    transport = HTTPXTransport(url=f"{api}/graphql", headers={"Authorization": f"Bearer {READER}"})
    with Client(transport=transport, fetch_schema_from_transport=False) as session:
        yield session  # type: ignore[misc]


def _data(body: dict[str, Any]) -> dict[str, Any]:
    assert "errors" not in body, body
    data: dict[str, Any] = body["data"]
    return data


def test_profile_by_identifier_is_normalized_like_loaders(
    api: str, people: dict[str, str], client: Client
) -> None:
    request = GraphQLRequest(
        PROFILE, variable_values={"type": "email", "value": " Ann@Example.ORG "}
    )
    result = client.execute(request)
    profile = result["profile"]
    assert profile["id"] == people["ann"]
    assert profile["redirected"] is False and profile["requestedId"] is None
    assert profile["status"] == "active" and profile["size"] == 4
    keys = [e["node"]["key"] for e in profile["identifiers"]["edges"]]
    assert keys == ["cookie:ck-a1", "cookie:ck-a2", "crm_id:C1", "email:ann@example.org"]
    email = profile["identifiers"]["edges"][3]["node"]
    assert email["seen"] == 2 and email["sources"] == ["segment"]
    assert email["firstSeen"].startswith("2026-10-01") and email["lastSeen"].startswith(
        "2026-10-07"
    )
    first_name = [t for t in profile["traits"] if t["name"] == "first_name"]
    assert first_name == [
        {
            "name": "first_name",
            "value": "Ann",
            "source": "segment",
            "observedAt": "2026-10-01T10:00:00+00:00",
            "identifier": "crm_id:C1",
        }
    ]
    assert profile["events"] == [
        {
            "name": "Order Completed",
            "count": 2,
            "firstAt": "2026-10-02T12:00:00+00:00",
            "lastAt": "2026-10-17T12:00:00+00:00",
        }
    ]
    history = [e["node"] for e in profile["history"]["edges"]]
    assert history[0]["kind"] == "created"
    assert history[0]["identities"] == [{"id": people["ann"], "role": "created"}]


def test_profile_by_id_and_unknown_ones(api: str, people: dict[str, str]) -> None:
    body = gql(api, "query($id: ID!) { profile(id: $id) { id size } }", {"id": people["bob"]})
    assert _data(body)["profile"] == {"id": people["bob"], "size": 3}
    missing = gql(api, '{ profile(id: "no-such-identity") { id } }')
    assert missing["data"] == {"profile": None}
    assert missing["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    nobody = gql(api, '{ profile(identifier: {type: "email", value: "zoe@example.org"}) { id } }')
    assert nobody["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    both = gql(
        api,
        'query($id: ID!) { profile(id: $id, identifier: {type: "crm_id", value: "C1"}) { id } }',
        {"id": people["bob"]},
    )
    assert both["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    bad = gql(api, '{ profile(identifier: {type: "email", value: "not an email"}) { id } }')
    assert bad["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "not a valid email" in bad["errors"][0]["message"]
    unknown_type = gql(api, '{ profile(identifier: {type: "shoe_size", value: "42"}) { id } }')
    assert unknown_type["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


def test_merged_id_resolves_to_its_survivor(
    api: str, graph: Graph, tmp_path: Path, people: dict[str, str]
) -> None:
    # Bob's cookie turns out to be Ann's too? No: a new cookie seen with both Ann's email and
    # a fresh crm-less identity merges the latter into Ann.
    load_events(graph, tmp_path, "solo", [identify(20, cookie="ck-solo", day=300)])
    run(graph, tmp_path)
    solo = _data(gql(api, '{ profile(identifier: {type: "cookie", value: "ck-solo"}) { id } }'))[
        "profile"
    ]["id"]
    load_events(
        graph, tmp_path, "join", [identify(21, cookie="ck-solo", email="ann@example.org", day=301)]
    )
    run(graph, tmp_path)
    body = gql(
        api,
        "query($id: ID!) { profile(id: $id) { id requestedId redirected size "
        "history { edges { node { kind identities { id role current { id } } } } } } }",
        {"id": solo},
    )
    profile = _data(body)["profile"]
    assert profile["id"] == people["ann"] and profile["requestedId"] == solo
    assert profile["redirected"] is True and profile["size"] == 5
    kinds = [e["node"]["kind"] for e in profile["history"]["edges"]]
    assert kinds[0] == "merged" and sorted(kinds[1:]) == ["created", "created"]
    merged = profile["history"]["edges"][0]["node"]["identities"]
    assert {(x["id"], x["role"]) for x in merged} == {
        (solo, "merged"),
        (people["ann"], "survivor"),
    }
    assert all(x["current"]["id"] == people["ann"] for x in merged)


def test_identifiers_page_through_every_member_once(api: str, people: dict[str, str]) -> None:
    seen: list[str] = []
    after = None
    while True:
        body = gql(
            api,
            PROFILE,
            {"type": "crm_id", "value": "C1", "first": 1, "after": after},
        )
        page = _data(body)["profile"]["identifiers"]
        assert page["totalCount"] == 4
        seen += [e["node"]["key"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == ["cookie:ck-a1", "cookie:ck-a2", "crm_id:C1", "email:ann@example.org"]
    typed = gql(
        api,
        '{ profile(identifier: {type: "crm_id", value: "C1"}) '
        '{ identifiers(types: ["email", "crm_id"]) { totalCount edges { node { key } } } } }',
    )
    assert _data(typed)["profile"]["identifiers"]["totalCount"] == 2
    bad = gql(api, PROFILE, {"type": "crm_id", "value": "C1", "after": "%%%"})
    assert bad["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


def test_profiles_in_bulk_keep_the_order_asked(api: str, people: dict[str, str]) -> None:
    body = gql(
        api,
        "query($ids: [ID!]) { profiles(ids: $ids) { id } }",
        {"ids": [people["bob"], "missing", people["ann"]]},
    )
    assert _data(body)["profiles"] == [{"id": people["bob"]}, None, {"id": people["ann"]}]
    body = gql(
        api,
        '{ profiles(identifiers: [{type: "email", value: "BOB@example.org"}, '
        '{type: "cookie", value: "ck-a2"}]) { id } }',
    )
    assert _data(body)["profiles"] == [{"id": people["bob"]}, {"id": people["ann"]}]


def test_identifier_with_links_and_identity(api: str, people: dict[str, str]) -> None:
    body = gql(
        api,
        """{ identifier(type: "email", value: "ann@example.org") {
              key type value hashed seen shared { kind } blocked
              identity { id }
              links(first: 2) { totalCount pageInfo { hasNextPage endCursor }
                edges { node { otherKey count sources party evidence cut forced
                               other { key identity { id } } } } } } }""",
    )
    node = _data(body)["identifier"]
    assert node["key"] == "email:ann@example.org" and node["identity"]["id"] == people["ann"]
    assert node["shared"] is None and node["blocked"] is False
    links = node["links"]
    assert links["totalCount"] == 3 and links["pageInfo"]["hasNextPage"] is True
    first = links["edges"][0]["node"]
    assert first["otherKey"] == "cookie:ck-a1" and first["party"] == "first"
    assert first["sources"] == ["segment"] and first["evidence"] and not first["cut"]
    assert first["other"] == {"key": "cookie:ck-a1", "identity": {"id": people["ann"]}}
    rest = gql(
        api,
        'query($after: String) { identifier(type: "email", value: "ann@example.org") '
        "{ links(first: 2, after: $after) { edges { node { otherKey } } } } }",
        {"after": links["pageInfo"]["endCursor"]},
    )
    assert [e["node"]["otherKey"] for e in _data(rest)["identifier"]["links"]["edges"]] == [
        "crm_id:C1"
    ]
    kiosk = gql(api, '{ identifier(type: "cookie", value: "ck-kiosk") { shared { kind reason } } }')
    shared = _data(kiosk)["identifier"]["shared"]
    assert shared["kind"] == "direct" and "3 crm_id identifiers" in shared["reason"]


def test_explain_same_and_apart(api: str, people: dict[str, str]) -> None:
    query = """query($a: IdentifierInput!, $b: IdentifierInput!) {
      explain(a: $a, b: $b) { a b same summary identityA identityB
        path { a b verdict why sources party count evidence firstSeen lastSeen } } }"""
    same = gql(
        api,
        query,
        {"a": {"type": "crm_id", "value": "C1"}, "b": {"type": "cookie", "value": "ck-a2"}},
        key=STEWARD,
    )
    result = _data(same)["explain"]
    assert result["same"] is True and result["summary"] == "same identity, joined by 2 link(s)"
    assert result["identityA"] == result["identityB"] == people["ann"]
    assert [h["verdict"] for h in result["path"]] == ["merged", "merged"]
    assert result["path"][0]["sources"] == ["segment"] and result["path"][0]["evidence"]
    apart = gql(
        api,
        query,
        {"a": {"type": "crm_id", "value": "C3"}, "b": {"type": "crm_id", "value": "C4"}},
        key=STEWARD,
    )
    result = _data(apart)["explain"]
    assert result["same"] is False and "shared" in result["summary"]
    assert {h["verdict"] for h in result["path"]} == {"shared"}
    unknown = gql(
        api,
        query,
        {"a": {"type": "crm_id", "value": "C1"}, "b": {"type": "crm_id", "value": "C99"}},
        key=STEWARD,
    )
    assert unknown["errors"][0]["extensions"]["code"] == "NOT_FOUND"


FEED = """query($since: DateTime, $kinds: [IdentityEventKind!], $first: Int!, $after: String) {
  identityEvents(since: $since, kinds: $kinds, first: $first, after: $after) {
    pageInfo { hasNextPage endCursor }
    edges { cursor node { id kind at reason actor identities { id role } } } } }"""


def _feed(api: str, **variables: Any) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    after = None
    while True:
        body = gql(api, FEED, {"first": 2, **variables, "after": after})
        page = _data(body)["identityEvents"]
        events += [e["node"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            return events
        after = page["pageInfo"]["endCursor"]


def test_identity_event_feed_pages_in_order_and_filters(
    api: str, graph: Graph, people: dict[str, str]
) -> None:
    events = _feed(api)
    created = [e for e in events if e["kind"] == "created"]
    assert (
        len(events)
        == len(created)
        == graph.read("count", "MATCH (e:IdentityEvent) RETURN count(e) AS n")[0]["n"]
    )
    assert len({e["id"] for e in events}) == len(events)
    assert [(e["at"], e["id"]) for e in events] == sorted((e["at"], e["id"]) for e in events)
    assert _feed(api, kinds=["MERGED", "SPLIT"]) == []
    assert _feed(api, since="2999-01-01T00:00:00Z") == []
    naive = gql(api, FEED, {"first": 1, "since": "2026-01-01T00:00:00"})
    assert naive["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    # events of a resolve still running are held back until it completes
    graph.run(
        "fake a running resolve",
        "CREATE (:ResolveRun {id: 'running-run', status: 'running'}) WITH 1 AS x "
        "MATCH (e:IdentityEvent) WITH e LIMIT 1 SET e.run = 'running-run'",
    )
    assert len(_feed(api)) == len(events) - 1


def test_review_queue_lists_shared_identifiers(api: str, people: dict[str, str]) -> None:
    body = gql(
        api,
        "{ reviewQueue(first: 10) { shared { totalCount edges { node { links "
        "identifier { key shared { kind reason } } } } } quarantines { id size sample } } }",
        key=STEWARD,
    )
    queue = _data(body)["reviewQueue"]
    assert queue["shared"]["totalCount"] == 1
    item = queue["shared"]["edges"][0]["node"]
    assert item["identifier"]["key"] == "cookie:ck-kiosk" and item["links"] == 3
    assert item["identifier"]["shared"]["kind"] == "direct"
    assert queue["quarantines"] == []


def test_stats_count_what_is_there(api: str, people: dict[str, str]) -> None:
    body = gql(
        api,
        "{ stats { identifiers { type count } identifiersTotal identities links "
        "sizes { size identities } largestIdentity "
        "lastLoad { source status read accepted rejected } lastResolve { mode status } } }",
    )
    stats = _data(body)["stats"]
    counts = {t["type"]: t["count"] for t in stats["identifiers"]}
    assert counts["cookie"] == 5 and counts["crm_id"] == 5 and counts["email"] == 2
    assert counts["phone"] == 1 and counts["dmp_id"] == 0
    assert stats["identifiersTotal"] == 13
    # ann (4), bob (3), the phone and its cookie, the kiosk cookie and C3, C4, C5 alone
    assert stats["identities"] == 7 and stats["largestIdentity"] == 4
    assert stats["sizes"] == [
        {"size": 1, "identities": 4},
        {"size": 2, "identities": 1},
        {"size": 3, "identities": 1},
        {"size": 4, "identities": 1},
    ]
    assert stats["links"] == 11  # ann 4, bob 3, the kiosk 3, the phone 1
    assert stats["lastLoad"] == {
        "source": "segment",
        "status": "completed",
        "read": 9,
        "accepted": 9,
        "rejected": 0,
    }
    assert stats["lastResolve"] == {"mode": "full", "status": "completed"}


def test_cursors_are_opaque_but_checked(api: str, people: dict[str, str]) -> None:
    forged = base64.urlsafe_b64encode(json.dumps(["not", "a", "cursor"]).encode()).decode()
    body = gql(api, FEED, {"first": 1, "after": forged})
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
