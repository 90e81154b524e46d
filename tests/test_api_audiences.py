"""Audience exports through the real server: exportAudience, the download route, the audience
queries, roles and errors, and the example operations in graphql/operations."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from identity.config import Settings
from identity.normalize import sha256_hex
from identity.store.driver import Graph
from identity.store.schema import init_schema
from tests.api_server import MARKETER, READER, gql, serve, server_env
from tests.marketing import leave, person, segment

pytestmark = pytest.mark.neo4j
ROOT = Path(__file__).resolve().parent.parent
OPERATIONS = sorted((ROOT / "graphql" / "operations").glob("marketer-[78]-*.graphql"))

EXPORT = """
mutation Export($segmentId: ID!, $types: [String!]!, $format: AudienceFormat! = CSV,
                $hashed: Boolean! = false, $destination: AudienceDestination = null,
                $delta: Boolean! = false) {
  exportAudience(segmentId: $segmentId, identifierTypes: $types, format: $format,
                 hashed: $hashed, destination: $destination, delta: $delta) {
    id audienceId segmentId status format hashed destination delta identifierTypes
    members identifiers eligible rows adds removes
    skippedConsent { type count } skippedBlocked skippedHashed downloadPath
  }
}
"""


@pytest.fixture(scope="module")
def served(
    neo4j_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    """A real server writing its exports to a directory of the test's own."""
    exports = tmp_path_factory.mktemp("exports")
    env = {**server_env(neo4j_settings), "IDGRAPH_EXPORT_DIR": str(exports)}
    with serve(env, tmp_path_factory.mktemp("api") / "server.log") as base:
        yield base, exports


@pytest.fixture
def people(graph: Graph) -> Graph:
    init_schema(graph)
    segment(graph)
    person(
        graph,
        "p-ann",
        [("email", "ann@example.org"), ("phone", "+33612345678")],
        consent={"marketing": True},
    )
    person(graph, "p-bob", [("email", "bob@example.org")], consent={"marketing": False})
    return graph


def export(base: str, key: str = MARKETER, **variables: Any) -> dict[str, Any]:
    return gql(base, EXPORT, {"segmentId": "seg-1", "types": ["email", "phone"], **variables}, key)


def download(base: str, path: str, key: str | None = MARKETER) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.get(base + path, headers=headers, timeout=30)


def test_export_and_download_a_hashed_audience(served: tuple[str, Path], people: Graph) -> None:
    base, exports = served
    body = export(base, hashed=True, destination="META")
    assert "errors" not in body, body
    done = body["data"]["exportAudience"]
    assert done["status"] == "completed" and done["destination"] == "META"
    assert (done["members"], done["identifiers"], done["eligible"], done["rows"]) == (2, 3, 2, 2)
    assert done["skippedConsent"] == [{"type": "email", "count": 1}]
    assert done["downloadPath"] == f"/exports/{done['id']}.csv"
    assert (exports / f"{done['id']}.csv").is_file()
    response = download(base, done["downloadPath"])
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert {(r["identity_id"], r["type"], r["value"]) for r in rows} == {
        ("p-ann", "email", sha256_hex("ann@example.org")),
        ("p-ann", "phone", sha256_hex("33612345678")),
    }


def test_download_needs_a_marketer_key_and_an_existing_file(
    served: tuple[str, Path], people: Graph
) -> None:
    base, _ = served
    path = export(base)["data"]["exportAudience"]["downloadPath"]
    assert download(base, path, key=None).status_code == 401
    assert download(base, path, key="not-a-key-at-all").status_code == 401
    refused = download(base, path, key=READER)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "FORBIDDEN"
    assert download(base, "/exports/exp-nope.csv").status_code == 404
    assert download(base, "/exports/..%2F..%2Fetc%2Fpasswd").status_code == 404
    assert download(base, "/exports/server.log").status_code == 404


def test_delta_and_the_audience_queries(served: tuple[str, Path], people: Graph) -> None:
    base, _ = served
    first = export(base, delta=True, format="NDJSON")["data"]["exportAudience"]
    assert (first["adds"], first["removes"], first["format"]) == (2, 0, "NDJSON")
    leave(people, "seg-1", "p-ann")
    person(people, "p-bob", [], consent={"marketing": True})
    delta = export(base, delta=True, format="NDJSON")["data"]["exportAudience"]
    assert (delta["adds"], delta["removes"], delta["rows"]) == (1, 2, 3)
    assert delta["audienceId"] == first["audienceId"]
    lines = download(base, delta["downloadPath"]).text.splitlines()
    assert sorted((r["value"], r["op"]) for r in map(json.loads, lines)) == [
        ("+33612345678", "remove"),
        ("ann@example.org", "remove"),
        ("bob@example.org", "add"),
    ]
    listed = gql(
        base,
        "query($s: ID) { audiences(segmentId: $s) { id segmentId identifierTypes hashed "
        "destination exported exports(first: 5) { id delta rows } } }",
        {"s": "seg-1"},
        MARKETER,
    )
    assert "errors" not in listed, listed
    [audience] = listed["data"]["audiences"]
    assert audience["id"] == first["audienceId"] and audience["exported"] == 1
    assert audience["identifierTypes"] == ["email", "phone"] and audience["destination"] is None
    assert [e["id"] for e in audience["exports"]] == [delta["id"], first["id"]]
    exports = gql(
        base,
        "query($a: ID) { audienceExports(audienceId: $a, first: 1) { id rows } }",
        {"a": first["audienceId"]},
        MARKETER,
    )["data"]["audienceExports"]
    assert exports == [{"id": delta["id"], "rows": 3}]


def test_roles_and_errors(served: tuple[str, Path], people: Graph) -> None:
    base, _ = served

    def code(body: dict[str, Any]) -> str:
        return str(body["errors"][0]["extensions"]["code"])

    assert code(export(base, key=READER)) == "FORBIDDEN"
    assert code(gql(base, "{ audiences { id } }", key=READER)) == "FORBIDDEN"
    missing = export(base, segmentId="seg-nope")
    assert (
        code(missing) == "NOT_FOUND" and "no segment 'seg-nope'" in missing["errors"][0]["message"]
    )
    segment(people, "seg-new", refreshed=False)
    fresh = export(base, segmentId="seg-new")
    assert code(fresh) == "BAD_USER_INPUT" and "refresh it first" in fresh["errors"][0]["message"]
    bad_type = export(base, types=["email", "fax"])
    assert code(bad_type) == "BAD_USER_INPUT" and "'fax'" in bad_type["errors"][0]["message"]
    assert code(export(base, hashed=True)) == "BAD_USER_INPUT"


def test_example_operations_run(served: tuple[str, Path], people: Graph) -> None:
    base, _ = served
    assert len(OPERATIONS) >= 2
    export(base, hashed=True, destination="GOOGLE")
    for path in OPERATIONS:
        text = path.read_text()
        assert "# role: marketer" in text
        raw = text.split("# variables: ", 1)[1].split("\n", 1)[0]
        body = gql(base, text, json.loads(raw), MARKETER)
        assert "errors" not in body, (path.name, body)
        assert all(v for v in body["data"].values()), (path.name, body)
