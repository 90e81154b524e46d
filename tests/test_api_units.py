"""The API's pure parts: keys and roles, the rate limiter, query cost."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest
from graphql import FragmentDefinitionNode, OperationDefinitionNode, parse

from identity.api.auth import ApiKeys, Principal, WriteKeys, basic_user, bearer_token
from identity.api.limits import RateLimiter, operation_cost
from identity.api.schema import schema
from identity.errors import ConfigError
from tests.cli import idgraph


def test_api_keys_from_json_or_a_file(tmp_path: Path) -> None:
    keys = ApiKeys.parse(
        '{"key-for-reader": "reader", "key-for-steward": {"role": "steward", "name": "ann"}}'
    )
    assert len(keys) == 2
    reader = keys.find("key-for-reader")
    assert reader is not None and reader.role == "reader" and reader.name.startswith("reader-")
    assert "key-for-reader" not in reader.name
    assert keys.find("key-for-steward") == Principal("ann", "steward")
    assert keys.find("key-for-nobody") is None and keys.find("") is None
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"key-in-a-file": "admin"}))
    admin = ApiKeys.parse(str(path)).find("key-in-a-file")
    assert admin is not None and admin.may("steward") and admin.may("marketer")
    assert len(ApiKeys.parse(None)) == 0


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("{not json", "IDGRAPH_API_KEYS: invalid JSON"),
        ('["a-list-of-keys"]', "expected a JSON object key -> role"),
        ('{"short": "reader"}', "entry 1: a key needs at least 8 characters"),
        ('{"long-enough": "owner"}', "entry 1: unknown role 'owner'"),
        ('{"long-enough": {"name": "x"}}', 'entry 1: expected a role or {"role"'),
        ('{"long-enough": {"role": "reader", "name": " "}}', "name must be a non-empty"),
        ("/no/such/file.json", "neither JSON nor the path of a file"),
    ],
)
def test_bad_api_keys_are_named(raw: str, message: str) -> None:
    with pytest.raises(ConfigError, match=r"^invalid settings: IDGRAPH_API_KEYS") as caught:
        ApiKeys.parse(raw)
    assert message in str(caught.value)
    assert "long-enough" not in str(caught.value)  # a key never appears in an error


def test_write_keys_map_to_sources() -> None:
    keys = WriteKeys.parse('{"write-key-one": "web", "write-key-two": "app"}')
    found = keys.find("write-key-two")
    assert found is not None and found.source == "app"
    listed = WriteKeys.parse('["write-key-three"]').find("write-key-three")
    assert listed is not None and listed.source == "segment"
    with pytest.raises(ConfigError, match="IDGRAPH_WRITE_KEYS: entry 1: the source"):
        WriteKeys.parse('{"write-key-one": ""}')


def test_authorization_headers() -> None:
    assert bearer_token("Bearer abc-123") == "abc-123"
    assert bearer_token("bearer   abc ") == "abc"
    assert bearer_token("Basic abc") is None and bearer_token("Bearer ") is None
    assert bearer_token(None) is None
    encoded = base64.b64encode(b"write-key:").decode()
    assert basic_user(f"Basic {encoded}") == "write-key"
    assert basic_user("Basic !!!") is None and basic_user("Bearer x") is None


def test_serve_refuses_bad_keys_in_one_line() -> None:
    result = idgraph("serve", env={"IDGRAPH_API_KEYS": '{"tiny": "reader"}'})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: invalid settings: IDGRAPH_API_KEYS: entry 1: a key needs at least 8 characters"
    ]


def test_rate_limiter_refills() -> None:
    limiter = RateLimiter(10.0)  # bursts of 20
    waits = [limiter.take("a") for _ in range(25)]
    assert waits[:20] == [0.0] * 20 and all(w > 0 for w in waits[20:])
    assert limiter.take("b") == 0.0  # buckets are per caller
    time.sleep(0.25)
    assert limiter.take("a") == 0.0  # refilled at 10/s
    assert RateLimiter(0).take("a") == 0.0  # off


def _cost(query: str, variables: dict[str, object] | None = None) -> int:
    document = parse(query)
    operation = next(d for d in document.definitions if isinstance(d, OperationDefinitionNode))
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    return operation_cost(schema._schema, operation, fragments, variables or {}, 200)


def test_query_cost_counts_pages_and_lists() -> None:
    assert _cost("{ stats { links } }") == 2
    one = _cost('{ profile(id: "x") { identifiers(first: 10) { edges { node { key } } } } }')
    assert one == 1 + 1 + 10 * 3
    # without `first` a connection counts its default page (50)
    assert _cost('{ profile(id: "x") { identifiers { edges { node { key } } } } }') == 2 + 150
    nested = (
        '{ profile(id: "x") { identifiers(first: 100) { edges { node { '
        "links(first: 100) { edges { node { otherKey } } } } } } } }"
    )
    assert _cost(nested) == 1 + 1 + 100 * 3 + 100 * 100 * 3
    bulk = "query($ids: [ID!]) { profiles(ids: $ids) { id } }"
    assert _cost(bulk, {"ids": ["a"] * 40}) == 1 + 40
    assert _cost(bulk, {"ids": ["a"] * 999}) == 1 + 200
    paged = "query($n: Int!) { identityEvents(first: $n) { edges { cursor } } }"
    assert _cost(paged, {"n": 7}) == 1 + 7 * 2
    fragment = (
        'query { profile(id: "x") { ...F } } '
        "fragment F on Profile { identifiers(first: 2) { edges { cursor } } }"
    )
    assert _cost(fragment) == 1 + 1 + 2 * 2
    assert _cost("{ __schema { types { name } } }") == 0
