"""Privacy through the real server: exportProfile and forgetProfile (admin only), their
errors, HTTP ingestion refusing forgotten identifiers, and the scheduled purge."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from identity.config import Settings
from identity.store.driver import Graph
from tests.api_data import load_people
from tests.api_server import ADMIN, READER, STEWARD, WRITE_KEY, gql, serve, server_env

pytestmark = pytest.mark.neo4j

OPERATIONS = Path(__file__).resolve().parent.parent / "graphql" / "operations"

EXPORT = """query($id: ID, $identifier: IdentifierInput) {
  exportProfile(id: $id, identifier: $identifier)
}"""
FORGET = """mutation($id: ID, $identifier: IdentifierInput, $reason: String!) {
  forgetProfile(id: $id, identifier: $identifier, reason: $reason) {
    identityId identifiers links mergedIds neighbours scrubbed eventId resolved
  }
}"""
PROFILE = "query($id: ID) { profile(id: $id) { id status size } }"


@pytest.fixture(scope="module")
def server(
    neo4j_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    """A server for the module (no scheduled purge: it would hold the resolve lock while
    the tests resolve), with its log."""
    home = tmp_path_factory.mktemp("privacy")
    env = {
        **server_env(neo4j_settings),
        "IDGRAPH_REJECTS_DIR": str(home / "rejects"),
        "IDGRAPH_PURGE_INTERVAL_HOURS": "0",
    }
    with serve(env, home / "server.log") as base:
        yield base, home / "server.log"


def _code(body: dict[str, Any]) -> str:
    assert body.get("errors"), body
    return str(body["errors"][0]["extensions"]["code"])


def _settle(graph: Graph) -> None:
    """Wait for the server's background resolve of the batches posted."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        rows = graph.read(
            "pending",
            "MATCH (b:Batch {status: 'completed'}) WHERE b.resolved_at IS NULL "
            "RETURN count(b) AS n",
        )
        if rows[0]["n"] == 0:
            return
        time.sleep(0.1)
    raise AssertionError("the background resolve did not settle")


def test_export_then_forget(server: tuple[str, Path], graph: Graph, tmp_path: Path) -> None:
    base, _ = server
    people = load_people(graph, tmp_path)
    ann = {"type": "email", "value": "Ann@Example.org"}
    body = gql(base, EXPORT, {"identifier": ann}, key=ADMIN)
    doc = body["data"]["exportProfile"]
    assert doc["identity"]["id"] == people["ann"] and doc["identity"]["status"] == "active"
    assert sorted(i["key"] for i in doc["identifiers"]) == [
        "cookie:ck-a1", "cookie:ck-a2", "crm_id:C1", "email:ann@example.org",
    ]  # fmt: skip
    assert _code(gql(base, EXPORT, {"id": people["ann"]}, key=STEWARD)) == "FORBIDDEN"
    assert _code(gql(base, FORGET, {"id": people["ann"], "reason": "x"}, key=READER)) == (
        "FORBIDDEN"
    )

    body = gql(base, FORGET, {"identifier": ann, "reason": "GDPR ticket 88"}, key=ADMIN)
    done = body["data"]["forgetProfile"]
    assert done["identityId"] == people["ann"] and done["identifiers"] == 4
    assert done["resolved"] is True and done["links"] >= 4
    profile = gql(base, PROFILE, {"id": people["ann"]})["data"]["profile"]
    assert profile == {"id": people["ann"], "status": "forgotten", "size": 0}
    doc = gql(base, EXPORT, {"id": people["ann"]}, key=ADMIN)["data"]["exportProfile"]
    assert doc["identity"]["status"] == "forgotten" and doc["identifiers"] == []
    assert [h["kind"] for h in doc["history"]][-1] == "forgotten"
    assert doc["history"][-1]["actor"] == "admin-bob"
    again = gql(base, FORGET, {"id": people["ann"], "reason": "again"}, key=ADMIN)
    assert _code(again) == "CONFLICT"
    gone = gql(base, EXPORT, {"identifier": ann}, key=ADMIN)
    assert _code(gone) == "NOT_FOUND" and "was erased on" in gone["errors"][0]["message"]


def test_bad_requests(server: tuple[str, Path], graph: Graph, tmp_path: Path) -> None:
    base, _ = server
    people = load_people(graph, tmp_path)
    both = {"id": people["bob"], "identifier": {"type": "crm_id", "value": "C2"}, "reason": "x"}
    assert _code(gql(base, FORGET, both, key=ADMIN)) == "BAD_USER_INPUT"
    assert _code(gql(base, FORGET, {"id": people["bob"], "reason": " "}, key=ADMIN)) == (
        "BAD_USER_INPUT"
    )
    assert _code(gql(base, FORGET, {"id": "nope", "reason": "x"}, key=ADMIN)) == "NOT_FOUND"
    assert _code(gql(base, EXPORT, {}, key=ADMIN)) == "BAD_USER_INPUT"
    # nothing was erased by the refusals
    assert gql(base, PROFILE, {"id": people["bob"]})["data"]["profile"]["status"] == "active"


def test_ingestion_refuses_forgotten_identifiers(
    server: tuple[str, Path], graph: Graph, tmp_path: Path
) -> None:
    base, _ = server
    people = load_people(graph, tmp_path)
    gql(base, FORGET, {"id": people["bob"], "reason": "GDPR ticket 89"}, key=ADMIN)
    events = [
        {"type": "identify", "messageId": "again-1", "userId": "C2", "anonymousId": "ck-b",
         "timestamp": "2026-11-02T10:00:00Z", "traits": {"first_name": "Bob"}},
        {"type": "identify", "messageId": "again-2", "userId": "C9",
         "timestamp": "2026-11-02T10:00:00Z", "traits": {"email": "bob@example.org"}},
    ]  # fmt: skip
    response = httpx.post(
        f"{base}/v1/batch", json={"batch": events}, auth=(WRITE_KEY, ""), timeout=30
    )
    answer = response.json()
    assert response.status_code == 200, answer
    assert answer["counts"] == {"read": 2, "accepted": 1, "rejected": 1}
    assert answer["reasons"] == {"forgotten": 1}
    # C2 and ck-b (the whole first record), bob's email (the second keeps C9)
    assert [r["code"] for r in answer["rejected_values"]] == ["forgotten"] * 3
    _settle(graph)
    present = {r["k"] for r in graph.read("keys", "MATCH (i:Identifier) RETURN i.key AS k")}
    assert "crm_id:C9" in present
    assert not present & {"crm_id:C2", "cookie:ck-b", "email:bob@example.org"}
    # only a forgotten person's events: suppressed on purpose, not a bad request
    alone = {**events[0], "messageId": "again-3"}
    response = httpx.post(f"{base}/v1/batch", json={"batch": [alone]}, auth=(WRITE_KEY, ""),
                          timeout=30)  # fmt: skip
    assert response.status_code == 200, response.text
    assert response.json()["counts"] == {"read": 1, "accepted": 0, "rejected": 1}


def test_the_server_purges_on_schedule(
    neo4j_settings: Settings, graph: Graph, tmp_path: Path
) -> None:
    env = {**server_env(neo4j_settings), "IDGRAPH_PURGE_INTERVAL_HOURS": "0.0005"}  # 1.8 s
    log = tmp_path / "server.log"
    with serve(env, log):
        deadline = time.monotonic() + 30
        while "retention purge done" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.2)
    line = next(x for x in log.read_text().splitlines() if "retention purge done" in x)
    assert "dmp_segments" in line and "retention_identifiers" in line


def test_the_example_operations_run(server: tuple[str, Path], graph: Graph, tmp_path: Path) -> None:
    base, _ = server
    people = load_people(graph, tmp_path)
    results: dict[str, Any] = {}
    for path in sorted(OPERATIONS.glob("admin-*.graphql")):
        text = path.read_text()
        assert "# role: admin" in text
        raw = text.split("# variables: ", 1)[1].split("\n", 1)[0]
        for name, identity in people.items():
            raw = raw.replace(f'"${name}"', json.dumps(identity))
        body = gql(base, text, json.loads(raw), key=ADMIN)
        assert "errors" not in body, (path.name, body)
        results[path.stem] = body["data"]
    assert len(results) == 2
    exported = results["admin-1-export-profile"]["exportProfile"]
    assert exported["identity"]["id"] == people["ann"]
    forgot = results["admin-2-forget-profile"]["forgetProfile"]
    assert forgot["identifiers"] == 1 and forgot["links"] == 1 and forgot["resolved"]
