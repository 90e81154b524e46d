"""Segment-compatible ingestion through a real server: Segment's own Python SDK, then every
endpoint, refusal and limit with httpx; what was written is checked with Cypher and GraphQL."""

from __future__ import annotations

import gzip
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import segment.analytics as analytics
from segment.analytics.client import Client

from identity.config import Settings
from identity.store.driver import Graph
from identity.store.host import free_port
from identity.store.schema import init_schema
from tests.api_server import WRITE_KEY, gql, serve, server_env

pytestmark = pytest.mark.neo4j

APP_KEY = "write-key-app-0001"  # source "app" in tests.api_server.WRITE_KEYS
AUTH = (WRITE_KEY, "")  # as the SDKs send it: Authorization: Basic base64("KEY:")

PROFILE = """
query Profile($value: String!) {
  profile(identifier: {type: "crm_id", value: $value}) {
    id identifiers { edges { node { type value } } }
  }
}
"""


@pytest.fixture(scope="module")
def server(
    neo4j_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    """A server for the module, with its rejects directory."""
    home = tmp_path_factory.mktemp("ingestion")
    env = {**server_env(neo4j_settings), "IDGRAPH_REJECTS_DIR": str(home / "rejects")}
    with serve(env, home / "server.log") as base:
        yield base, home / "rejects"


@pytest.fixture
def api(server: tuple[str, Path], graph: Graph) -> Iterator[str]:
    """The server on an empty database; waits for its background resolve to settle after."""
    init_schema(graph)
    yield server[0]
    deadline = time.monotonic() + 60
    while (
        time.monotonic() < deadline
        and graph.read(
            "unsettled",
            "OPTIONAL MATCH (b:Batch {status: 'completed'}) WHERE b.resolved_at IS NULL "
            "AND b.accepted > 0 OPTIONAL MATCH (r:ResolveRun {status: 'running'}) "
            "RETURN count(b) + count(r) AS n",
        )[0]["n"]
    ):
        time.sleep(0.1)


@pytest.fixture
def rejects(server: tuple[str, Path]) -> Path:
    return server[1]


def post(base: str, path: str, body: Any, auth: tuple[str, str] | None = AUTH) -> httpx.Response:
    return httpx.post(f"{base}{path}", json=body, auth=auth, timeout=60)


def identity_members(graph: Graph, key: str) -> set[str]:
    rows = graph.read(
        "members",
        "MATCH (:Identifier {key: $key})-[:MEMBER_OF]->(p:Identity) "
        "MATCH (i)-[:MEMBER_OF]->(p) RETURN collect(i.key) AS keys",
        {"key": key},
    )
    return set(rows[0]["keys"]) if rows else set()


def identifier(graph: Graph, key: str) -> dict[str, Any]:
    rows = graph.read(
        "identifier", "MATCH (i:Identifier {key: $key}) RETURN properties(i) AS p", {"key": key}
    )
    return rows[0]["p"] if rows else {}


def batches(graph: Graph) -> list[dict[str, Any]]:
    return graph.read("batches", "MATCH (b:Batch) RETURN properties(b) AS p ORDER BY b.started_at")


def ingested(base: str) -> dict[str, float]:
    text = httpx.get(f"{base}/metrics").text
    found = re.findall(r'^idgraph_ingested_events_total\{outcome="(\w+)"\} (\S+)$', text, re.M)
    return {outcome: float(value) for outcome, value in found}


def test_segment_sdk_events_become_one_profile(api: str, graph: Graph) -> None:
    settings = analytics.write_key, analytics.host, analytics.sync_mode
    analytics.write_key, analytics.host, analytics.sync_mode = WRITE_KEY, api, True
    analytics.default_client = None
    try:
        analytics.page(anonymous_id="ck-ada", name="Home")
        analytics.track(anonymous_id="ck-ada", event="Product Viewed", properties={"sku": "B1"})
        analytics.identify(
            "C-9001",
            {"email": " Ada.Lovelace@Example.com ", "first_name": "Ada"},
            anonymous_id="ck-ada",
        )
        analytics.screen("C-9001", name="Cart", context={"device": {"id": "dev-ada"}})
        analytics.alias("ck-ada-old", "C-9001")
        analytics.flush()
    finally:
        analytics.write_key, analytics.host, analytics.sync_mode = settings
        analytics.default_client = None
    expected = {
        "cookie:ck-ada",
        "cookie:ck-ada-old",
        "crm_id:C-9001",
        "device:dev-ada",
        "email:ada.lovelace@example.com",
    }
    deadline = time.monotonic() + 20
    profile = None
    while time.monotonic() < deadline:
        profile = gql(api, PROFILE, {"value": "C-9001"})["data"]["profile"]
        if profile and len(profile["identifiers"]["edges"]) == len(expected):
            break
        time.sleep(0.2)
    assert profile is not None, "the background resolve did not make the profile in 20 s"
    nodes = {f"{e['node']['type']}:{e['node']['value']}" for e in profile["identifiers"]["edges"]}
    assert nodes == expected
    assert identity_members(graph, "crm_id:C-9001") == expected
    assert {(b["p"]["source"], b["p"]["party"], b["p"]["accepted"]) for b in batches(graph)} == {
        ("web", "first", 1)
    }
    cookie = identifier(graph, "cookie:ck-ada")
    assert cookie["event_count.Product Viewed"] == 1 and cookie["event_count.page:Home"] == 1
    assert identifier(graph, "crm_id:C-9001")["trait.web.first_name"] == "Ada"


def test_segment_sdk_batches_gzip_and_flushes(api: str, graph: Graph) -> None:
    errors: list[Exception] = []
    client = Client(WRITE_KEY, host=api, gzip=True, on_error=lambda e, batch: errors.append(e))
    for n in range(30):
        client.track(user_id=f"C-{n}", anonymous_id=f"ck-{n}", event="Signed Up")
    client.flush()
    client.join()
    assert errors == []
    counts = graph.read(
        "batches", "MATCH (b:Batch) RETURN sum(b.read) AS read, sum(b.accepted) AS accepted"
    )
    assert counts == [{"read": 30, "accepted": 30}]
    assert identifier(graph, "crm_id:C-7")["event_count.Signed Up"] == 1


def test_each_endpoint_takes_its_type_from_the_path(api: str, graph: Graph) -> None:
    events = {
        "identify": {"userId": "C1", "anonymousId": "ck-1", "traits": {"email": "bo@example.org"}},
        "track": {"anonymousId": "ck-1", "event": "Order Completed"},
        "page": {"anonymousId": "ck-1", "name": "Checkout"},
        "screen": {"userId": "C1", "name": "Home", "context": {"device": {"id": "dev-1"}}},
        "alias": {"userId": "C1", "previousId": "ck-0"},
        "group": {"userId": "C1", "groupId": "G7"},
    }
    for n, (kind, event) in enumerate(events.items()):
        response = post(api, f"/v1/{kind}", {**event, "messageId": f"m-{n}"})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["success"] is True and body["status"] == "completed"
        assert body["counts"] == {"read": 1, "accepted": 1, "rejected": 0}
        assert body["resolve"] == "requested"
    body = post(api, "/v1/track?resolve=wait", {"userId": "C1", "event": "Refund"}).json()
    assert body["resolve"] == "done"
    assert identity_members(graph, "crm_id:C1") == {
        "crm_id:C1",
        "cookie:ck-1",
        "cookie:ck-0",
        "email:bo@example.org",
        "device:dev-1",
    }
    cookie, user = identifier(graph, "cookie:ck-1"), identifier(graph, "crm_id:C1")
    assert cookie["event_count.Order Completed"] == 1 and cookie["event_count.page:Checkout"] == 1
    assert user["event_count.screen:Home"] == 1 and user["event_count.Refund"] == 1
    assert user["trait.web.group_id"] == "G7"


def test_a_path_refuses_another_type(api: str, graph: Graph) -> None:
    response = post(api, "/v1/identify", {"type": "track", "userId": "C1", "event": "X"})
    assert response.status_code == 400
    assert response.json() == {
        "success": False,
        "code": "wrong_type",
        "message": "/v1/identify takes identify events, got type 'track': "
        "send other types to their own endpoint or to /v1/batch",
    }
    response = post(api, "/v1/track", {"batch": [{"type": "track", "userId": "C1"}]})
    assert response.status_code == 400 and "/v1/batch" in response.json()["message"]
    assert post(api, "/v1/track", {"type": "track", "userId": "C1", "event": "X"}).is_success
    assert httpx.get(f"{api}/v1/track").status_code == 405


def test_the_write_key(api: str, graph: Graph, rejects: Path) -> None:
    event = {"type": "identify", "userId": "C1"}
    missing = post(api, "/v1/batch", {"batch": [event]}, auth=None)
    assert missing.status_code == 401
    assert missing.json()["code"] == "unauthorized"
    assert missing.json()["message"].startswith("missing write key: send it as the basic-auth")
    assert missing.headers["www-authenticate"].startswith("Basic")
    for auth, body in (
        (("not-a-write-key", ""), {"batch": [event]}),
        (None, {"batch": [event], "writeKey": "not-a-write-key"}),
        (("reader-key-0001", ""), {"batch": [event]}),  # a GraphQL key is no write key
    ):
        wrong = post(api, "/v1/batch", body, auth=auth)
        assert wrong.status_code == 401
        assert wrong.json()["message"] == "invalid write key: not one of IDGRAPH_WRITE_KEYS"
    assert batches(graph) == []
    # Segment's other way: the key in the body; it names the source, and is not kept
    body = {"batch": [event, {"type": "page"}], "writeKey": APP_KEY}
    accepted = post(api, "/v1/batch", body, auth=None)
    assert accepted.status_code == 200 and accepted.json()["counts"]["accepted"] == 1
    assert [b["p"]["source"] for b in batches(graph)] == ["app"]
    assert identifier(graph, "crm_id:C1")["sources"] == ["app"]
    written = (rejects / f"{accepted.json()['batch']}.ndjson").read_text()
    assert "no_identifier" in written and APP_KEY not in written


def test_a_body_that_is_not_a_json_object(api: str, graph: Graph) -> None:
    cases = [
        (b'{"batch": [', "invalid_json", "invalid JSON: Expecting value at line 1 column 12"),
        (b"\xff\xfe{}", "invalid_json", "the body is not UTF-8: invalid start byte"),
        (b"[1, 2]", "invalid_request", "the body must be a JSON object, got list"),
        (b'{"batch": 5}', "invalid_request", 'the body must hold "batch": a list of events'),
        (b'{"batch": []}', "invalid_request", "the batch is empty: nothing to load"),
        (b'{"batch": [[]]}', "invalid_request", "batch[0] is a list: a batch holds events"),
        (b'{"batch": [{"batch": []}]}', "invalid_request", "batch[0] is a batch"),
        (b'{"batch": [{}], "context": 5}', "invalid_request", "context must be an object"),
    ]
    for content, code, message in cases:
        response = httpx.post(f"{api}/v1/batch", content=content, auth=AUTH)
        assert response.status_code == 400, content
        assert response.json()["code"] == code
        assert response.json()["message"].startswith(message), response.json()
    assert post(api, "/v1/batch?resolve=later", {"batch": [{}]}).status_code == 400
    brotli = httpx.post(
        f"{api}/v1/batch", content=b"{}", auth=AUTH, headers={"Content-Encoding": "br"}
    )
    assert brotli.status_code == 415 and brotli.json()["code"] == "unsupported_encoding"
    assert batches(graph) == []


def test_size_limits(api: str, graph: Graph) -> None:
    big = "x" * (33 * 1024)
    event = {"type": "track", "userId": "C1", "event": "E", "properties": {"note": big}}
    too_large = post(api, "/v1/batch", {"batch": [{"type": "page", "userId": "C1"}, event]})
    assert too_large.status_code == 413
    assert too_large.json()["code"] == "too_large"
    assert too_large.json()["message"].startswith("batch[1] is 33")
    assert post(api, "/v1/track", event).status_code == 413  # 32 KB for a single event
    small = {"type": "page", "userId": "C1", "properties": {"note": "y" * 20_000}}
    over = post(api, "/v1/batch", {"batch": [small] * 26})  # every event fits, not the batch
    assert over.status_code == 413 and "500 KB" in over.json()["message"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams in
        yield b'{"batch": ['
        for _ in range(26):
            yield json.dumps(small).encode() + b","
        yield b"{}]}"

    streamed = httpx.post(f"{api}/v1/batch", content=chunks(), auth=AUTH, timeout=60)
    assert streamed.status_code == 413
    bomb = gzip.compress(json.dumps({"batch": [small] * 40}).encode())
    assert len(bomb) < 10_000
    inflated = httpx.post(
        f"{api}/v1/batch", content=bomb, auth=AUTH, headers={"Content-Encoding": "gzip"}
    )
    assert inflated.status_code == 413 and "decompressed" in inflated.json()["message"]
    assert batches(graph) == []


def test_a_partly_bad_batch_says_what_was_refused(api: str, graph: Graph, rejects: Path) -> None:
    before = ingested(api)
    body = {
        "batch": [
            {"type": "identify", "userId": "C1", "traits": {"email": "not-an-email"}},
            {"type": "track", "anonymousId": "undefined", "event": "E"},
            {"type": "purchase", "userId": "C2"},
            {"type": "page", "userId": "C3", "timestamp": "yesterday"},
            {
                "type": "track",
                "anonymousId": "ck-9",
                "event": "E",
                "context": {"traits": {"plan": "free"}},
            },
            "hello",
        ],
        "context": {"traits": {"plan": "pro", "locale": "fr-FR"}},
    }
    response = post(api, "/v1/batch", body)
    assert response.status_code == 200
    result = response.json()
    assert result["success"] is True
    assert result["message"] == "4 of 6 event(s) rejected: see rejections"
    assert result["counts"] == {"read": 6, "accepted": 2, "rejected": 4}
    assert result["reasons"] == {
        "no_identifier": 1,
        "unknown_type": 1,
        "invalid_timestamp": 1,
        "not_an_object": 1,
    }
    refused = [(r["index"], r["code"], r["field"]) for r in result["rejections"]]
    assert refused == [
        (1, "no_identifier", None),
        (2, "unknown_type", "type"),
        (3, "invalid_timestamp", "timestamp"),
        (5, "not_an_object", None),
    ]
    assert "anonymousId" in result["rejections"][0]["message"]
    assert [(r["index"], r["code"], r["field"]) for r in result["rejected_values"]] == [
        (0, "invalid_email", "traits.email")
    ]
    # the batch's context reached every event; an event's own values win
    user, cookie = identifier(graph, "crm_id:C1"), identifier(graph, "cookie:ck-9")
    assert (user["trait.web.plan"], user["trait.web.locale"]) == ("pro", "fr-FR")
    assert (cookie["trait.web.plan"], cookie["trait.web.locale"]) == ("free", "fr-FR")
    [batch] = batches(graph)
    assert (batch["p"]["read"], batch["p"]["accepted"], batch["p"]["rejected"]) == (6, 2, 4)
    lines = [
        json.loads(line)
        for line in (rejects / f"{result['batch']}.ndjson").read_text().splitlines()
    ]
    assert sorted((entry["line"], entry["code"]) for entry in lines) == [
        (1, "invalid_email"),
        (2, "no_identifier"),
        (3, "unknown_type"),
        (4, "invalid_timestamp"),
        (6, "not_an_object"),
    ]
    after = ingested(api)
    assert after["accepted"] - before.get("accepted", 0) == 2
    assert after["rejected"] - before.get("rejected", 0) == 4


def test_a_batch_refused_whole_answers_400_with_the_details(api: str, graph: Graph) -> None:
    response = post(api, "/v1/batch", {"batch": [{"type": "page"}, {"type": "nope", "userId": 1}]})
    assert response.status_code == 400
    result = response.json()
    assert result["success"] is False and result["code"] == "rejected"
    assert result["message"] == "every event was rejected (2): see rejections"
    assert result["counts"] == {"read": 2, "accepted": 0, "rejected": 2}
    assert [(r["index"], r["code"]) for r in result["rejections"]] == [
        (0, "no_identifier"),
        (1, "unknown_type"),
    ]
    assert result["resolve"] == "none"


def test_a_retried_request_changes_nothing(api: str, graph: Graph) -> None:
    events = [
        {"type": "identify", "userId": "C1", "anonymousId": "ck-1", "messageId": "m-1"},
        {"type": "track", "userId": "C1", "event": "E", "messageId": "m-2"},
    ]
    first = post(api, "/v1/batch", {"batch": events, "sentAt": "2026-10-01T10:00:00Z"}).json()
    assert first["status"] == "completed" and first["counts"]["accepted"] == 2
    before = identifier(graph, "crm_id:C1")
    # the SDKs send a new sentAt with every attempt: still the same batch
    again = post(api, "/v1/batch", {"batch": events, "sentAt": "2026-10-01T10:00:09Z"})
    assert again.status_code == 200
    assert again.json()["status"] == "already_loaded"
    assert again.json()["batch"] == first["batch"]
    assert again.json()["counts"] == first["counts"]
    assert again.json()["resolve"] == "none"
    assert len(batches(graph)) == 1 and identifier(graph, "crm_id:C1") == before
    # the same messageIds in another request: duplicates, which are no failure
    resent = post(api, "/v1/batch", {"batch": events[::-1]})
    assert resent.status_code == 200 and resent.json()["success"] is True
    assert resent.json()["counts"] == {"read": 2, "accepted": 0, "rejected": 2}
    assert {r["code"] for r in resent.json()["rejections"]} == {"duplicate_message_id"}
    assert identifier(graph, "crm_id:C1")["seen"] == before["seen"]


def test_neo4j_down_answers_503_at_once() -> None:
    env = {
        "IDGRAPH_NEO4J_URI": f"bolt://127.0.0.1:{free_port()}",
        "IDGRAPH_WRITE_KEYS": json.dumps({WRITE_KEY: "web"}),
    }
    with serve(env) as base:
        started = time.monotonic()
        response = post(base, "/v1/identify", {"userId": "C1"})
        assert time.monotonic() - started < 10
    assert response.status_code == 503
    assert response.json()["success"] is False and response.json()["code"] == "unavailable"
    assert response.json()["message"] == (
        "the graph database is unavailable: nothing was loaded, retry later"
    )
    assert response.headers["retry-after"] == "5"
