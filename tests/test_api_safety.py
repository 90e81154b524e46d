"""Keys and roles, limits, coded and masked errors, hostile input, logs and metrics, and
Neo4j going away and coming back: all through a real server."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from identity.config import Settings
from identity.store.driver import Graph, open_driver
from identity.store.local_server import LocalServer
from identity.store.schema import init_schema
from tests.api_data import load_people
from tests.api_server import ADMIN, KEYS, MARKETER, READER, STEWARD, WRITE_KEYS, gql, serve
from tests.api_server import server_env as env_for
from tests.conftest import TEST_PASSWORD, throwaway_config
from tests.resolving import load_events

pytestmark = pytest.mark.neo4j

STATS = "{ stats { identitiesTotal: identities } }"


@pytest.fixture
def people(graph: Graph, tmp_path: Path) -> dict[str, str]:
    return load_people(graph, tmp_path)


# (operation, the permission it needs); mutations name identifiers that exist
OPERATIONS = {
    "profile": ('{ profile(identifier: {type: "crm_id", value: "C1"}) { id } }', "read"),
    "profiles": ('{ profiles(identifiers: [{type: "crm_id", value: "C1"}]) { id } }', "read"),
    "identifier": ('{ identifier(type: "crm_id", value: "C1") { key } }', "read"),
    "identityEvents": ("{ identityEvents(first: 1) { edges { cursor } } }", "read"),
    "stats": ("{ stats { links } }", "read"),
    "explain": (
        '{ explain(a: {type: "crm_id", value: "C1"}, b: {type: "crm_id", value: "C2"}) { same } }',
        "steward",
    ),
    "reviewQueue": ("{ reviewQueue { quarantines { id } } }", "steward"),
    "blockIdentifier": (
        'mutation { blockIdentifier(type: "cookie", value: "ck-b", reason: "test") { action } }',
        "steward",
    ),
}
ROLE_KEYS = {"reader": READER, "steward": STEWARD, "marketer": MARKETER, "admin": ADMIN}
GRANTS = {
    "reader": {"read"},
    "steward": {"read", "steward"},
    "marketer": {"read"},
    "admin": {"read", "steward"},
}


@pytest.mark.parametrize("role", sorted(ROLE_KEYS))
def test_each_field_checks_the_role(api: str, people: dict[str, str], role: str) -> None:
    for name, (query, needs) in OPERATIONS.items():
        body = gql(api, query, key=ROLE_KEYS[role])
        if needs in GRANTS[role]:
            assert "errors" not in body, (role, name, body)
            assert body["data"][name] is not None
        else:
            assert not any((body["data"] or {}).values()), (role, name, body)
            error = body["errors"][0]
            assert error["extensions"]["code"] == "FORBIDDEN", (role, name, body)
            assert f"role {role}" in error["message"]


def test_no_key_or_a_wrong_key_gets_no_data(api: str, people: dict[str, str]) -> None:
    for name, (query, _) in OPERATIONS.items():
        body = gql(api, query, key=None)
        assert body["data"] is None, (name, body)
        assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        wrong = gql(api, query, key="reader-key-0002")
        assert wrong["_status"] == 401 and "data" not in wrong
        assert wrong["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    basic = httpx.post(
        f"{api}/graphql", json={"query": STATS}, auth=(READER, ""), timeout=30
    ).json()
    assert basic["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    # the schema itself is public: GraphiQL needs it before a key is typed in
    schema = gql(api, "{ __schema { queryType { name } } }", key=None)
    assert schema["data"] == {"__schema": {"queryType": {"name": "Query"}}}


def test_graphiql_loads_everything_from_this_server(api: str) -> None:
    """No CDN: every script and style of the GraphiQL page is served here, with the very
    bytes its integrity hash names (a machine without internet shows GraphiQL)."""
    page = httpx.get(f"{api}/graphql", headers={"Accept": "text/html"}, timeout=30)
    assert page.status_code == 200 and "graphiql" in page.text.lower()
    assert "unpkg.com" not in page.text and "https://" not in page.text
    assets = re.findall(r'(?:src|href)="(/static/vendor/[^"]+)"\s+integrity="sha384-([^"]+)"',
                        page.text)  # fmt: skip
    assert {path.split("/")[3].lstrip("@") for path, _ in assets} >= {
        "react@18.2.0", "react-dom@18.2.0", "graphiql@3.8.3", "graphiql",
    }  # fmt: skip
    for path, integrity in assets:
        asset = httpx.get(f"{api}{path}", timeout=30)
        assert asset.status_code == 200, path
        assert base64.b64encode(hashlib.sha384(asset.content).digest()).decode() == integrity
        kind = "javascript" if path.endswith(".js") else "css"
        assert kind in asset.headers["content-type"], path
        licence = path.split("/")[:5] if "/@" in path else path.split("/")[:4]
        assert httpx.get(f"{api}{'/'.join(licence)}/LICENSE", timeout=30).status_code == 200
    assert httpx.get(f"{api}/static/vendor/../../app.py", timeout=30).status_code == 404


def test_depth_cost_and_page_limits(api: str, people: dict[str, str]) -> None:
    deep = (
        '{ identifier(type: "crm_id", value: "C1") { '
        + ("identity { identifiers(first: 1) { edges { node { " * 4)
        + "key"
        + " } } } }" * 4
        + " } }"
    )
    body = gql(api, deep)
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    assert "depth" in body["errors"][0]["message"]
    costly = (
        '{ profile(identifier: {type: "crm_id", value: "C1"}) { identifiers(first: 200) '
        "{ edges { node { links(first: 200) { edges { node { otherKey } } } } } } } }"
    )
    body = gql(api, costly)
    assert body["data"] is None
    error = body["errors"][0]
    assert (
        error["extensions"]["code"] == "QUERY_TOO_COMPLEX" and error["extensions"]["cost"] > 50_000
    )
    big_page = gql(
        api,
        '{ profile(identifier: {type: "crm_id", value: "C1"}) { identifiers(first: 5000) '
        "{ totalCount } } }",
    )
    assert big_page["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "between 0 and 200" in big_page["errors"][0]["message"]


def test_body_size_and_rate_limits(neo4j_settings: Settings, graph: Graph, tmp_path: Path) -> None:
    load_people(graph, tmp_path)
    env = {
        **env_for(neo4j_settings),
        "IDGRAPH_API_MAX_BODY_BYTES": "2048",
        "IDGRAPH_API_RATE_LIMIT": "0.2",  # a burst of 1, then one every 5 s
    }
    with serve(env) as base:
        padded = STATS + " " * 3000
        too_big = gql(base, padded)
        assert too_big["_status"] == 413
        assert too_big["errors"][0]["extensions"]["code"] == "REQUEST_TOO_LARGE"

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
            yield json.dumps({"query": padded}).encode()

        streamed = httpx.post(
            f"{base}/graphql",
            content=chunks(),
            headers={"Authorization": f"Bearer {READER}", "Content-Type": "application/json"},
            timeout=30,
        )
        assert streamed.status_code == 413
        answers = [gql(base, STATS, key=STEWARD) for _ in range(2)]
        assert [a["_status"] for a in answers] == [200, 429]
        limited = answers[1]["errors"][0]
        assert limited["extensions"]["code"] == "RATE_LIMITED"
        assert "rate limit of 0.2 requests/s exceeded" in limited["message"]
        # buckets are per key: another key is not slowed down by the first
        assert gql(base, STATS, key=ADMIN)["_status"] == 200


HOSTILE = [
    "it's",
    'say "hi"',
    "back`tick`",
    "}) DETACH DELETE n //",
    "x'}) MATCH (n) DETACH DELETE n //",
    "$param",
    "\\u0000",
]


def test_hostile_values_are_only_ever_values(
    api: str, graph: Graph, tmp_path: Path, people: dict[str, str]
) -> None:
    events = [
        {
            "type": "identify",
            "messageId": f"h{i}",
            "anonymousId": value,
            "userId": f"H{i}",
            "timestamp": "2026-10-05T10:00:00Z",
        }
        for i, value in enumerate(HOSTILE)
    ]
    load_events(graph, tmp_path, "hostile", events)
    before = _settled_node_count(graph)
    for value in HOSTILE:
        found = gql(
            api,
            'query($v: String!) { identifier(type: "cookie", value: $v) { key value } }',
            {"v": value},
        )
        assert found["data"]["identifier"]["value"] == value.strip()
        missing = gql(
            api,
            'query($v: String!) { identifier(type: "crm_id", value: $v) { key } }',
            {"v": value + "-nope"},
        )
        assert missing["errors"][0]["extensions"]["code"] in ("NOT_FOUND", "BAD_USER_INPUT")
        wrong_type = gql(
            api,
            'query($t: String!) { identifier(type: $t, value: "C1") { key } }',
            {"t": value},
        )
        assert wrong_type["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
        cut = gql(
            api,
            'mutation($v: String!) { cutLink(a: {type: "cookie", value: $v}, '
            'b: {type: "crm_id", value: "C1"}, reason: $v) { action } }',
            {"v": value},
            key=STEWARD,
        )
        assert cut["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    assert _settled_node_count(graph) == before


def _settled_node_count(graph: Graph) -> int:
    """Nodes in the graph once the server's webhook worker has numbered the outbox (numbering
    creates the sequence node the first time, which is the worker's doing, not the request's)."""
    deadline = time.monotonic() + 10
    while graph.read("waiting", "MATCH (n:Unsequenced) RETURN count(n) AS n")[0]["n"]:
        assert time.monotonic() < deadline, "the outbox was not numbered within 10 s"
        time.sleep(0.05)
    return int(graph.read("count", "MATCH (n) RETURN count(n) AS n")[0]["n"])


def _log_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_errors_are_masked_and_logs_carry_the_request_id(
    neo4j_settings: Settings, graph: Graph, tmp_path: Path
) -> None:
    people = load_people(graph, tmp_path)
    graph.run("corrupt", "MATCH (p:Identity {id: $id}) SET p.size = 'many'", {"id": people["bob"]})
    log = tmp_path / "server.log"
    with serve(env_for(neo4j_settings), log) as base:
        response = httpx.post(
            f"{base}/graphql",
            json={
                "query": "query($id: ID!) { profile(id: $id) { id size } }",
                "variables": {"id": people["bob"]},
            },
            headers={"Authorization": f"Bearer {READER}", "X-Request-ID": "req-masked-1"},
            timeout=30,
        )
        body = response.json()
        assert response.headers["x-request-id"] == "req-masked-1"
        error = body["errors"][0]
        assert error["extensions"] == {
            "code": "INTERNAL_SERVER_ERROR",
            "request_id": "req-masked-1",
        }
        assert "many" not in error["message"] and "ValueError" not in error["message"]
        fine = httpx.post(
            f"{base}/graphql",
            json={"query": STATS},
            headers={"Authorization": f"Bearer {READER}"},
            timeout=30,
        )
        generated = fine.headers["x-request-id"]
        assert len(generated) == 32
        gql(base, STATS, key="reader-key-9999")  # a wrong key, logged only as refused
    lines = _log_lines(log)
    failure = [x for x in lines if x["level"] == "error"]
    assert failure and failure[0]["request_id"] == "req-masked-1"
    assert "ValueError" in failure[0]["exception"] and "many" in failure[0]["exception"]
    access = [x for x in lines if x["logger"] == "idgraph.access"]
    assert {x["request_id"] for x in access} >= {"req-masked-1", generated}
    assert all(x["principal"] in ("-", "reader-" + x["principal"][7:]) for x in access)
    text = log.read_text()
    for key in [*KEYS, *WRITE_KEYS, "reader-key-9999"]:
        assert key not in text


def test_metrics_by_operation(api: str, people: dict[str, str]) -> None:
    gql(api, '{ profile(identifier: {type: "crm_id", value: "C1"}) { id } }')
    gql(api, '{ profile(id: "missing") { id } }')
    text = httpx.get(f"{api}/metrics", timeout=30).text
    assert 'idgraph_requests_total{operation="profile",route="/graphql",status="200"}' in text
    assert 'idgraph_request_seconds_bucket{le="0.05",operation="profile",route="/graphql"}' in text
    assert 'idgraph_neo4j_query_seconds_count{operation="identity by identifier"}' in text
    assert 'idgraph_graphql_errors_total{code="NOT_FOUND"}' in text


@pytest.mark.slow
def test_neo4j_down_then_back(tmp_path: Path) -> None:
    server = LocalServer(throwaway_config(tmp_path / "neo4j"))
    server.start()
    settings = Settings(neo4j_uri=server.uri, neo4j_password=TEST_PASSWORD)  # type: ignore[call-arg]
    driver = open_driver(settings)
    try:
        init_schema(Graph(driver, settings.neo4j_database))
    finally:
        driver.close()
    try:
        with serve(env_for(settings)) as base:
            assert "errors" not in gql(base, STATS)
            server.stop()
            started = time.monotonic()
            down = gql(base, STATS)
            assert time.monotonic() - started < 10
            assert down["data"] is None
            assert down["errors"][0]["extensions"]["code"] == "SERVICE_UNAVAILABLE"
            assert httpx.get(f"{base}/readyz", timeout=30).status_code == 503
            server.start()
            deadline = time.monotonic() + 60
            while "errors" in (body := gql(base, STATS)):
                assert time.monotonic() < deadline, body
                time.sleep(0.5)
            assert httpx.get(f"{base}/readyz", timeout=30).status_code == 200
    finally:
        server.stop()
