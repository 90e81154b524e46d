"""What the console reads, through a real server: who the key is, an identity as a graph with
each link's verdict now, recent loads and resolves, the largest identities and large merges,
an identity's segments, and the roles each needs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from identity.store.driver import Graph
from tests.api_data import load_people
from tests.api_server import MARKETER, READER, STEWARD, data, gql

pytestmark = pytest.mark.neo4j

GRAPH = """query ($id: ID!) { identityGraph(id: $id) {
  identityId members truncated
  nodes { key member identityId shared blocked identifier { type value } }
  links { a b verdict why count sources evidence forced origins { batch source } } } }"""


@pytest.fixture
def people(graph: Graph, tmp_path: Path) -> dict[str, str]:
    return load_people(graph, tmp_path)


def error_code(base: str, query: str, key: str, **variables: Any) -> str:
    body = gql(base, query, variables, key)
    return str(body["errors"][0]["extensions"]["code"])


def test_viewer_names_the_key_and_its_permissions(api: str, people: dict[str, str]) -> None:
    viewer = data(api, "{ viewer { name role permissions } }", STEWARD)["viewer"]
    assert viewer == {
        "name": "steward-alice",
        "role": "steward",
        "permissions": ["read", "steward"],
    }
    assert error_code(api, "{ viewer { role } }", "") == "UNAUTHENTICATED"


def test_the_graph_holds_the_identity_and_its_neighbours_with_verdicts(
    api: str, people: dict[str, str]
) -> None:
    # the kiosk cookie, shared by three customers: its links are drawn, and merge nothing
    kiosk = data(api, GRAPH, id=people["kiosk"])["identityGraph"]
    nodes = {n["key"]: n for n in kiosk["nodes"]}
    assert nodes["cookie:ck-kiosk"]["member"] and nodes["cookie:ck-kiosk"]["shared"] == "direct"
    customers = {f"crm_id:C{i}" for i in (3, 4, 5)}
    assert customers <= set(nodes) and not any(nodes[k]["member"] for k in customers)
    assert all(nodes[k]["identityId"] not in (None, people["kiosk"]) for k in customers)
    assert {(link["verdict"], link["count"]) for link in kiosk["links"]} == {("shared", 1)}
    assert all("shared identifier" in link["why"] for link in kiosk["links"])
    # Ann: every identifier of hers drawn, her links merged, with their evidence and loads
    ann = data(api, GRAPH, id=people["ann"])["identityGraph"]
    size = data(api, "query ($id: ID!) { profile(id: $id) { size } }", id=people["ann"])
    members = [n for n in ann["nodes"] if n["member"]]
    assert len(members) == ann["members"] == size["profile"]["size"] and not ann["truncated"]
    assert {link["verdict"] for link in ann["links"]} == {"merged"}
    link = next(
        x for x in ann["links"] if {x["a"], x["b"]} == {"cookie:ck-a2", "email:ann@example.org"}
    )
    assert link["evidence"] and link["evidence"][0].endswith(":m2")
    assert [o["source"] for o in link["origins"]] == ["segment"]


def test_a_cut_shows_as_cut_with_the_stewards_words(api: str, people: dict[str, str]) -> None:
    cut = """mutation { cutLink(a: {type: "cookie", value: "ck-a2"},
      b: {type: "email", value: "ann@example.org"}, reason: "not hers") { eventId } }"""
    data(api, cut, STEWARD)
    ann = data(api, GRAPH, id=people["ann"])["identityGraph"]
    link = next(x for x in ann["links"] if "cookie:ck-a2" in (x["a"], x["b"]))
    assert link["verdict"] == "cut"
    assert "steward-alice" in link["why"] and "not hers" in link["why"]
    cookie = next(n for n in ann["nodes"] if n["key"] == "cookie:ck-a2")
    assert not cookie["member"]  # it stands alone now, one link away


def test_recent_loads_and_resolves(api: str, people: dict[str, str]) -> None:
    found = data(
        api,
        "{ recentLoads(first: 5) { source status read accepted rejected reasons { reason count } } "
        "recentResolves(first: 5) { mode status identifiers created seconds { step seconds } } "
        "stats { lastLoad { source reasons { reason } } lastResolve { mode seconds { step } } } }",
    )
    [load] = found["recentLoads"]
    assert (load["source"], load["status"], load["read"]) == ("segment", "completed", 9)
    assert load["accepted"] + load["rejected"] == load["read"]
    run = found["recentResolves"][0]
    assert run["status"] == "completed" and run["identifiers"] > 0 and run["created"] > 0
    assert {"read", "compute", "write"} <= {s["step"] for s in run["seconds"]}
    assert found["stats"]["lastResolve"]["seconds"] == [{"step": s["step"]} for s in run["seconds"]]
    assert found["stats"]["lastLoad"]["source"] == "segment"
    assert error_code(api, "{ recentLoads(first: 0) { batch } }", READER) == "BAD_USER_INPUT"


def test_largest_identities_and_large_merges_are_for_stewards(
    api: str, people: dict[str, str]
) -> None:
    query = "{ largestIdentities(first: 3) { id size } largeMerges(minSize: 1) { kind } }"
    assert error_code(api, query, READER) == "FORBIDDEN"
    found = data(api, query, STEWARD)
    sizes = [p["size"] for p in found["largestIdentities"]]
    assert sizes == sorted(sizes, reverse=True) and len(sizes) == 3
    assert all(e["kind"] == "merged" for e in found["largeMerges"])


def test_memberships_list_an_identitys_segments(api: str, people: dict[str, str]) -> None:
    create = """mutation { createSegment(name: "buyers",
      definition: {event: "Order Completed"}) { id } }"""
    segment = data(api, create, MARKETER)["createSegment"]["id"]
    query = "query ($id: ID!) { memberships(id: $id) { segmentId name since } }"
    assert data(api, query, id=people["ann"])["memberships"] == []
    data(api, f'mutation {{ refreshSegment(id: "{segment}") {{ refresh {{ size }} }} }}', MARKETER)
    [member] = data(api, query, id=people["ann"])["memberships"]
    assert (member["segmentId"], member["name"]) == (segment, "buyers") and member["since"]
    assert data(api, query, id=people["bob"])["memberships"] == []
