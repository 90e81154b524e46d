"""Steward mutations through a real server: each takes effect at once, returns the affected
identities and is audited under the acting key's name."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gql import Client, GraphQLRequest
from gql.transport.exceptions import TransportQueryError
from gql.transport.httpx import HTTPXTransport

from identity.store.driver import Graph
from tests.api_data import load_people
from tests.api_server import STEWARD, gql

pytestmark = pytest.mark.neo4j

CUT = """mutation($a: IdentifierInput!, $b: IdentifierInput!, $reason: String!) {
  cutLink(a: $a, b: $b, reason: $reason) {
    action keys reason actor eventId before identities { id size } } }"""
RESTORE = CUT.replace("cutLink", "restoreLink")
FORCE = CUT.replace("cutLink", "forceMerge")
BLOCK = """mutation($type: String!, $value: String!, $reason: String!) {
  blockIdentifier(type: $type, value: $value, reason: $reason) {
    action keys actor before identities { id size } } }"""
UNBLOCK = BLOCK.replace("blockIdentifier", "unblockIdentifier")
OWNER = '{ profile(identifier: {type: "cookie", value: "ck-a2"}) { id } }'


@pytest.fixture
def people(graph: Graph, tmp_path: Path) -> dict[str, str]:
    return load_people(graph, tmp_path)


@pytest.fixture
def steward(api: str) -> Iterator[Client]:
    transport = HTTPXTransport(
        url=f"{api}/graphql", headers={"Authorization": f"Bearer {STEWARD}"}, timeout=60
    )
    with Client(transport=transport, fetch_schema_from_transport=False) as session:
        yield session  # type: ignore[misc]


def _pair(a: tuple[str, str], b: tuple[str, str], reason: str) -> dict[str, Any]:
    return {
        "a": {"type": a[0], "value": a[1]},
        "b": {"type": b[0], "value": b[1]},
        "reason": reason,
    }


ANN_COOKIE = ("cookie", "ck-a2")
ANN_EMAIL = ("email", " Ann@Example.org")


def test_cut_splits_and_restore_joins_again(
    api: str, graph: Graph, people: dict[str, str], steward: Client
) -> None:
    cut = steward.execute(
        GraphQLRequest(CUT, variable_values=_pair(ANN_COOKIE, ANN_EMAIL, "shared laptop"))
    )
    result = cut["cutLink"]
    assert result["action"] == "cut_link" and result["actor"] == "steward-alice"
    assert result["keys"] == ["cookie:ck-a2", "email:ann@example.org"]
    assert result["before"] == [people["ann"]]
    sizes = sorted(p["size"] for p in result["identities"])
    assert sizes == [1, 3]  # ck-a2 alone; C1, ck-a1 and the email stay together
    owner = gql(api, OWNER)["data"]["profile"]["id"]
    assert owner != people["ann"]
    link = graph.read(
        "link",
        "MATCH (:Identifier {key: 'cookie:ck-a2'})-[r:LINKED]-(:Identifier {key: "
        "'email:ann@example.org'}) RETURN r.cut AS cut, r.cut_reason AS reason, r.cut_by AS by",
    )
    assert link == [{"cut": True, "reason": "shared laptop", "by": "steward-alice"}]
    # the audit event, under the steward's name, in the history of the identities touched
    history = gql(
        api,
        "query($id: ID!) { profile(id: $id) { history { edges { node { kind action actor "
        "reason keys } } } } }",
        {"id": people["ann"]},
    )["data"]["profile"]["history"]["edges"]
    audit = [e["node"] for e in history if e["node"]["kind"] == "steward"]
    assert audit == [
        {
            "kind": "steward",
            "action": "cut_link",
            "actor": "steward-alice",
            "reason": "shared laptop",
            "keys": ["cookie:ck-a2", "email:ann@example.org"],
        }
    ]
    split = [e["node"] for e in history if e["node"]["kind"] == "split"]
    assert split and split[0]["actor"] == "steward-alice"
    restored = steward.execute(
        GraphQLRequest(RESTORE, variable_values=_pair(ANN_COOKIE, ANN_EMAIL, "same person"))
    )["restoreLink"]
    assert [p["size"] for p in restored["identities"]] == [4]
    assert gql(api, OWNER)["data"]["profile"]["id"] == restored["identities"][0]["id"]


def test_force_merge_and_block_unblock(api: str, people: dict[str, str]) -> None:
    forced = gql(
        api,
        FORCE,
        _pair(("phone", "+33 6 71 82 93 04"), ("crm_id", "C2"), "confirmed by phone"),
        key=STEWARD,
    )["data"]["forceMerge"]
    assert sorted(forced["before"]) == sorted([people["bob"], people["phone"]])
    [merged] = forced["identities"]
    assert merged["size"] == 5 and merged["id"] in forced["before"]
    blocked = gql(
        api, BLOCK, {"type": "email", "value": "bob@example.org", "reason": "QA"}, key=STEWARD
    )["data"]["blockIdentifier"]
    assert blocked["before"] == [merged["id"]] and blocked["identities"][0]["size"] == 1
    node = gql(
        api,
        '{ identifier(type: "email", value: "bob@example.org") '
        "{ blocked blockedReason identity { size } } }",
    )["data"]["identifier"]
    assert node == {"blocked": True, "blockedReason": "QA", "identity": {"size": 1}}
    unblocked = gql(
        api, UNBLOCK, {"type": "email", "value": "bob@example.org", "reason": "ok"}, key=STEWARD
    )["data"]["unblockIdentifier"]
    assert [p["size"] for p in unblocked["identities"]] == [5]


@pytest.mark.parametrize(
    ("query", "variables", "code", "message"),
    [
        (CUT, _pair(ANN_COOKIE, ("crm_id", "C2"), "no link"), "NOT_FOUND", "no link"),
        (CUT, _pair(ANN_COOKIE, ("crm_id", "C99"), "x"), "NOT_FOUND", "crm_id:C99"),
        (CUT, _pair(ANN_COOKIE, ANN_EMAIL, "   "), "BAD_USER_INPUT", "a reason is required"),
        (CUT, _pair(ANN_COOKIE, ANN_EMAIL, "x" * 501), "BAD_USER_INPUT", "500 characters"),
        (CUT, _pair(ANN_COOKIE, ("email", "not-an-email"), "x"), "BAD_USER_INPUT", "email"),
        (RESTORE, _pair(ANN_COOKIE, ANN_EMAIL, "x"), "NOT_FOUND", "not cut"),
        (
            UNBLOCK,
            {"type": "cookie", "value": "ck-a1", "reason": "x"},
            "NOT_FOUND",
            "not blocked",
        ),
    ],
)
def test_steward_errors_are_coded(
    api: str,
    people: dict[str, str],
    steward: Client,
    query: str,
    variables: dict[str, Any],
    code: str,
    message: str,
) -> None:
    with pytest.raises(TransportQueryError) as caught:
        steward.execute(GraphQLRequest(query, variable_values=variables))
    error = caught.value.errors[0]  # type: ignore[index]
    assert error["extensions"]["code"] == code, error
    assert message in error["message"], error
    # nothing changed
    assert gql(api, OWNER)["data"]["profile"]["id"] == people["ann"]


SPLIT_PREVIEW = """query($ids: [IdentifierInput!]!) {
  splitOffPreview(identifiers: $ids) { identityId selected cuts { a b } groups } }"""
SPLIT = """mutation($ids: [IdentifierInput!]!, $reason: String!) {
  splitOff(identifiers: $ids, reason: $reason) {
    reason actor eventId plan { cuts { a b } groups } identities { id size } } }"""


def test_split_off_previews_then_cuts_the_fewest_links(
    api: str, graph: Graph, people: dict[str, str], steward: Client
) -> None:
    ck_a1 = [{"type": "cookie", "value": "ck-a1"}]
    plan = steward.execute(GraphQLRequest(SPLIT_PREVIEW, variable_values={"ids": ck_a1}))
    preview = plan["splitOffPreview"]
    assert preview["identityId"] == people["ann"] and preview["selected"] == ["cookie:ck-a1"]
    # ck-a1 was seen with C1 and Ann's email in one event: both links go
    assert preview["cuts"] == [
        {"a": "cookie:ck-a1", "b": "crm_id:C1"},
        {"a": "cookie:ck-a1", "b": "email:ann@example.org"},
    ]
    assert preview["groups"] == [
        ["cookie:ck-a1"],
        ["cookie:ck-a2", "crm_id:C1", "email:ann@example.org"],
    ]
    assert gql(api, OWNER)["data"]["profile"]["id"] == people["ann"]  # nothing written
    # a reader may not even preview
    refused = gql(api, SPLIT_PREVIEW, {"ids": ck_a1})
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"

    variables = {"ids": [{"type": "cookie", "value": "ck-a2"}], "reason": "shared laptop"}
    done = steward.execute(GraphQLRequest(SPLIT, variable_values=variables))["splitOff"]
    assert done["reason"] == "shared laptop" and done["actor"] == "steward-alice"
    assert done["plan"]["cuts"] == [{"a": "cookie:ck-a2", "b": "email:ann@example.org"}]
    assert sorted(p["size"] for p in done["identities"]) == [1, 3]
    assert gql(api, OWNER)["data"]["profile"]["id"] != people["ann"]
    bad = gql(api, SPLIT, {**variables, "reason": " "}, key=STEWARD)
    assert bad["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
