"""The API contract: the committed SDL matches the code, every example operation in
graphql/operations runs, and DataLoaders keep the number of Neo4j queries per request flat."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from identity.store.driver import Graph
from tests.api_data import load_people
from tests.api_server import ADMIN, MARKETER, READER, STEWARD, gql
from tests.resolving import identify, load_events, run

ROOT = Path(__file__).resolve().parent.parent
# Run in this order of file-name prefixes (each then by number): apps read, marketers build
# segments and audiences, stewards change identities, an admin forgets someone last.
PREFIXES = ("app", "marketer", "steward", "admin")
OPERATIONS = sorted(
    (ROOT / "graphql" / "operations").glob("*.graphql"),
    key=lambda path: (PREFIXES.index(path.name.split("-")[0]), path.name),
)
ROLE_KEYS = {"reader": READER, "steward": STEWARD, "marketer": MARKETER, "admin": ADMIN}


def test_committed_schema_matches_the_code() -> None:
    printed = subprocess.run(
        [
            str(Path(sys.executable).parent / "strawberry"),
            "export-schema",
            "identity.api.schema:schema",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout
    committed = (ROOT / "graphql" / "schema.graphql").read_text()
    assert printed.strip() == committed.strip(), (
        "graphql/schema.graphql is stale: run "
        "`strawberry export-schema identity.api.schema:schema --output graphql/schema.graphql`"
    )


def _header(text: str, name: str) -> str:
    found = re.search(rf"^# {name}: (.*)$", text, re.MULTILINE)
    assert found, f"missing '# {name}:' line"
    return found.group(1)


@pytest.mark.neo4j
def test_every_example_operation_runs(api: str, graph: Graph, tmp_path: Path) -> None:
    people = load_people(graph, tmp_path)
    assert len(OPERATIONS) >= 10
    results: dict[str, dict[str, Any]] = {}
    for path in OPERATIONS:
        text = path.read_text()
        role = _header(text, "role")
        raw = _header(text, "variables")
        for name, identity in people.items():
            raw = raw.replace(f'"${name}"', json.dumps(identity))
        body = gql(api, text, json.loads(raw), key=ROLE_KEYS[role])
        assert "errors" not in body, (path.name, body)
        assert body["data"] and all(v is not None for v in body["data"].values()), path.name
        results[path.stem] = body["data"]
    assert [p.stem for p in OPERATIONS] == list(results)
    profile = results["app-1-profile-by-identifier"]["profile"]
    assert profile["id"] == people["ann"] and profile["identifiers"]["totalCount"] == 4
    bulk = results["app-3-profiles-in-bulk"]["profiles"]
    assert [p and p["id"] for p in bulk] == [people["ann"], people["bob"], None]
    cut = results["steward-4-cut-link"]["cutLink"]
    assert cut["action"] == "cut_link" and cut["actor"] == "steward-alice"
    assert cut["before"] == [people["ann"]] and len(cut["identities"]) == 2
    restored = results["steward-5-restore-link"]["restoreLink"]["identities"]
    assert [p["id"] for p in restored] == [people["ann"]]
    # created in the same run, the two are as old as each other: either id may survive
    [forced] = results["steward-6-force-merge"]["forceMerge"]["identities"]
    assert forced["id"] in (people["bob"], people["phone"]) and forced["size"] == 5
    blocked = results["steward-7-block"]["blockIdentifier"]
    assert blocked["before"] == [forced["id"]] and blocked["identities"][0]["size"] == 1
    unblocked = results["steward-8-unblock"]["unblockIdentifier"]["identities"]
    assert [(p["id"], p["size"]) for p in unblocked] == [(forced["id"], 5)]
    # marketers: Ann alone ordered twice with an email; she never stated marketing consent
    assert results["marketer-2-preview-segment"]["previewSegment"]["size"] == 1
    refreshed = results["marketer-4-refresh-segment"]["refreshSegment"]
    assert refreshed["refresh"]["entered"] == refreshed["segment"]["size"] == 1
    members = results["marketer-5-segment-members"]["segment"]["members"]["edges"]
    assert [m["node"]["id"] for m in members] == [people["ann"]]
    exported = results["marketer-6-export-audience"]["exportAudience"]
    assert exported["status"] == "completed" and exported["rows"] == 0
    assert exported["skippedConsent"] == [{"type": "email", "count": 1}]
    # admins: access, then erasure of a kiosk customer
    assert results["admin-1-export-profile"]["exportProfile"]["identity"]["id"] == people["ann"]
    forgotten = results["admin-2-forget-profile"]["forgetProfile"]
    assert forgotten["identifiers"] == 1
    # the merge feed saw the steward's changes, made under the steward's name
    feed = gql(
        api,
        (ROOT / "graphql/operations/app-4-follow-merges.graphql").read_text(),
        {"since": "2026-01-01T00:00:00Z", "after": None},
    )["data"]["identityEvents"]["edges"]
    assert {e["node"]["kind"] for e in feed} == {"merged", "split"}


def _queries_run(api: str) -> float:
    text = httpx.get(f"{api}/metrics", timeout=30).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("idgraph_neo4j_query_seconds_count")
    )


PAGE = """query($ids: [ID!]) {
  profiles(ids: $ids) {
    id size
    identifiers(first: 10) { totalCount edges { node { key identity { id } links(first: 3) {
      edges { node { otherKey other { key } } } } } } }
    traits { name value }
    events { name count }
    history(first: 5) { edges { node { kind identities { id current { id } } } } }
  }
}"""


@pytest.mark.neo4j
def test_dataloaders_keep_queries_per_request_flat(api: str, graph: Graph, tmp_path: Path) -> None:
    events = []
    for n in range(50):
        events.append(identify(3 * n, user=f"P{n}", cookie=f"ck-{n}", email=f"p{n}@example.org"))
        events.append(
            {
                "type": "track",
                "messageId": f"t{n}",
                "timestamp": "2026-10-03T10:00:00Z",
                "anonymousId": f"ck-{n}",
                "event": "Viewed",
            }
        )
    load_events(graph, tmp_path, "fifty", events)
    run(graph, tmp_path)
    ids = [r["id"] for r in graph.read("ids", "MATCH (p:Identity) RETURN p.id AS id ORDER BY p.id")]
    assert len(ids) == 50
    counts = []
    for page in (ids[:5], ids):
        before = _queries_run(api)
        body = gql(api, PAGE, {"ids": page})
        assert "errors" not in body, body
        assert len(body["data"]["profiles"]) == len(page)
        assert all(p["identifiers"]["totalCount"] == 3 for p in body["data"]["profiles"])
        counts.append(_queries_run(api) - before)
    # one query per relationship: identity, members, links, other ends, identities of
    # members, attributes, history, current identities: the same for 5 profiles or 50
    assert counts[0] == counts[1] <= 9, counts


@pytest.mark.neo4j
def test_profile_by_identifier_with_its_identifiers_is_one_query(
    api: str, graph: Graph, tmp_path: Path
) -> None:
    load_people(graph, tmp_path)
    query = (
        'query($first: Int!) { profile(identifier: {type: "email", value: "ann@example.org"}) '
        '{ id identifiers(first: $first, types: ["cookie", "email"]) { totalCount '
        "edges { node { key } } } } }"
    )
    before = _queries_run(api)
    body = gql(api, query, {"first": 2})
    assert _queries_run(api) - before == 1
    page = body["data"]["profile"]["identifiers"]
    assert page["totalCount"] == 3
    assert [e["node"]["key"] for e in page["edges"]] == ["cookie:ck-a1", "cookie:ck-a2"]
