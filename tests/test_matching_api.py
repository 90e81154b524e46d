"""Record matching through a real server: explain's waterfall as data, the review band listed,
paged, accepted and rejected by a steward, and refused to other roles."""

from __future__ import annotations

from pathlib import Path

import pytest

from identity.ingest.service import load_table_file
from identity.matching import service
from identity.policy import Policy
from identity.policy.model import MatchingRules
from identity.resolve.service import resolve_identities
from identity.store.driver import Graph
from loaders.synth import SynthConfig, generate
from loaders.table import load_mapping
from tests.api_server import READER, STEWARD, data, gql
from tests.services import services

pytestmark = pytest.mark.neo4j

EXPLAIN = """query($a: IdentifierInput!, $b: IdentifierInput!) {
  explain(a: $a, b: $b) { same path { a b verdict why match {
    probability matchWeight priorWeight source model steps { comparison level weight } } } } }"""
REVIEWS = """query($first: Int!, $after: ID) { matchReviews(first: $first, after: $after) {
  id a b status score { probability matchWeight steps { comparison level weight } } } }"""
DECIDE = """mutation($id: ID!, $reason: String!) { %s(id: $id, reason: $reason) {
  action keys reason actor identities { id } } }"""


def _ends(key: str) -> dict[str, str]:
    type_, _, value = key.partition(":")
    return {"type": type_, "value": value}


@pytest.mark.timeout(600)
def test_matching_through_the_api(api: str, graph: Graph, tmp_path: Path) -> None:
    summary = generate(tmp_path / "synth", SynthConfig(people=400))
    crm = summary.files["crm"]
    ctx = services(graph, tmp_path)
    mapping = load_mapping(summary.files["crm_mapping"], ctx.policy.types)
    load_table_file(ctx, crm, mapping)
    resolve_identities(ctx)
    service.train(ctx, crm, mapping)
    done = service.run(ctx, crm, mapping)
    assert done.links > 0 and done.resolve is not None
    link = graph.read(
        "a link", "MATCH (x)-[r:LINKED {matched: true}]->(y) RETURN x.key AS a, y.key AS b LIMIT 1"
    )[0]
    shown = data(api, EXPLAIN, key=STEWARD, a=_ends(link["a"]), b=_ends(link["b"]))["explain"]
    assert shown["same"]
    hop = shown["path"][0]
    match = hop["match"]
    assert hop["verdict"] == "merged" and "matched by record matching" in hop["why"]
    assert match["source"] == "crm" and match["model"] == 1 and match["probability"] >= 0.99
    steps = match["steps"]
    assert [s["comparison"] for s in steps][:2] == ["First Name (name)", "Last Name (name)"]
    total = match["priorWeight"] + sum(s["weight"] for s in steps)
    assert abs(total - match["matchWeight"]) < 1e-3

    strict = services(graph, tmp_path, Policy(matching=MatchingRules(merge=1.0, review=0.5)))
    queued = service.run(strict, crm, mapping, resolve=False)
    assert queued.reviews >= 2
    page = data(api, REVIEWS, key=STEWARD, first=1)["matchReviews"]
    rest = data(api, REVIEWS, key=STEWARD, first=100, after=page[0]["id"])["matchReviews"]
    assert len(page) + len(rest) == queued.reviews
    assert page[0]["score"]["probability"] >= rest[0]["score"]["probability"]
    assert page[0]["status"] == "open" and page[0]["score"]["steps"]
    refused = gql(api, REVIEWS, {"first": 1}, key=READER)
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"

    accepted = data(api, DECIDE % "acceptMatch", key=STEWARD, id=page[0]["id"], reason="same")
    assert accepted["acceptMatch"]["action"] == "accept_match"
    assert len(accepted["acceptMatch"]["identities"]) == 1  # one customer now
    rejected = data(api, DECIDE % "rejectMatch", key=STEWARD, id=rest[0]["id"], reason="two")
    assert rejected["rejectMatch"]["action"] == "reject_match"
    again = gql(api, DECIDE % "rejectMatch", {"id": rest[0]["id"], "reason": "x"}, key=STEWARD)
    assert again["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "was rejected by" in again["errors"][0]["message"]
    unknown = gql(api, DECIDE % "acceptMatch", {"id": "nope", "reason": "x"}, key=STEWARD)
    assert unknown["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    no_reason = gql(api, DECIDE % "acceptMatch", {"id": rest[1]["id"], "reason": " "}, key=STEWARD)
    assert no_reason["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    left = data(api, REVIEWS, key=STEWARD, first=100)["matchReviews"]
    assert len(left) == queued.reviews - 2
