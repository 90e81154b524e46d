"""The shared-device rule against a real Neo4j: an incremental resolve gives what a full
recompute gives as a partner's sign-ins arrive, the calls are kept as open reviews (in the
CLI's and the API's review queue), and a steward's decision closes them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from identity.config import Settings
from identity.privacy.forget import forget_profile
from identity.resolve.explain import explain
from identity.steward import actions
from identity.store.driver import Graph
from identity.store.identities import read_review
from tests.api_server import STEWARD, gql
from tests.cli import cli_env, ok
from tests.resolving import identity_of, load_events, recomputed, run, stored
from tests.services import services

pytestmark = pytest.mark.neo4j

TABLET = {"id": "dev-tablet-1"}


def event(n: int, day: int, *, user: str | None = None, cookie: str, email: str,
          device: bool = True) -> dict[str, Any]:  # fmt: skip
    """An identify on ``day`` of October 2026: on the family tablet's app unless told not."""
    at = datetime(2026, 10, 1, 9, tzinfo=UTC) + timedelta(days=day, minutes=n)
    e: dict[str, Any] = {
        "type": "identify",
        "messageId": f"d{n}",
        "timestamp": at.isoformat().replace("+00:00", "Z"),
        "anonymousId": cookie,
        "traits": {"email": email},
    }
    if user is not None:
        e["userId"] = user
    if device:
        e["context"] = {"device": TABLET}
    return e


ANN = [
    event(1, 1, user="C1", cookie="ck-ann-laptop", email="ann@example.org", device=False),
    event(2, 3, user="C1", cookie="ck-tablet", email="ann@example.org"),
    event(3, 25, user="C1", cookie="ck-tablet", email="ann@example.org"),
]
BOB_FIRST = [event(4, 8, cookie="ck-tablet", email="bob@example.org")]
BOB_AGAIN = [event(5, 20, cookie="ck-tablet", email="bob@example.org")]


def test_a_partner_is_split_off_incrementally_as_a_full_run_would(
    graph: Graph, tmp_path: Path
) -> None:
    load_events(graph, tmp_path, "ann", ANN + BOB_FIRST)
    run(graph, tmp_path)
    # one sign-in is not enough to tell: together, and a call kept for review
    assert identity_of(graph, "email:bob@example.org") == identity_of(graph, "crm_id:C1")
    [(review)] = read_review(graph, 10)[2]
    assert not review["split"] and review["other"] == ["email:bob@example.org"]
    why = explain(services(graph, tmp_path), "email:ann@example.org", "email:bob@example.org")
    assert why.same and "the merge rests on one device" in why.summary
    load_events(graph, tmp_path, "bob", BOB_AGAIN)
    report = run(graph, tmp_path)
    assert report.mode == "incremental" and report.devices_split == 1
    assert stored(graph) == recomputed(graph, tmp_path)
    assert identity_of(graph, "email:bob@example.org") != identity_of(graph, "crm_id:C1")
    assert identity_of(graph, "device:dev-tablet-1") == identity_of(graph, "crm_id:C1")
    [(review)] = read_review(graph, 10)[2]
    assert review["split"] and review["kept"] == ["email:ann@example.org"]
    assert "two people on one device" in review["reason"]


def test_a_stewards_force_merge_closes_the_review(
    graph: Graph, tmp_path: Path, neo4j_settings: Settings, api: str
) -> None:
    load_events(graph, tmp_path, "ann", ANN + BOB_FIRST + BOB_AGAIN)
    run(graph, tmp_path)
    queue = gql(api, "{ reviewQueue { sharedDevices { split device kept other reason } } }",
                key=STEWARD)  # fmt: skip
    [shown] = queue["data"]["reviewQueue"]["sharedDevices"]
    assert shown["split"] and shown["other"] == ["email:bob@example.org"]
    assert "cookie:ck-tablet" in shown["device"] and "device:dev-tablet-1" in shown["device"]
    printed = ok("review", env=cli_env(neo4j_settings, tmp_path))
    assert "possible shared devices: 1 open" in printed and "(split)" in printed
    ctx = services(graph, tmp_path, actor="steward:alice")
    actions.force_merge(
        ctx, "email:bob@example.org", "device:dev-tablet-1", reason="Bob is Ann's husband"
    )
    assert identity_of(graph, "email:bob@example.org") == identity_of(graph, "crm_id:C1")
    assert read_review(graph, 10)[2] == []
    assert stored(graph) == recomputed(graph, tmp_path, as_of=datetime.now(UTC))


def test_forgetting_the_partner_removes_the_reviews_naming_them(
    graph: Graph, tmp_path: Path
) -> None:
    load_events(graph, tmp_path, "ann", ANN + BOB_FIRST + BOB_AGAIN)
    run(graph, tmp_path)
    assert read_review(graph, 10)[2]
    forget_profile(
        services(graph, tmp_path, actor="admin:dpo"),
        identifier="email:bob@example.org",
        reason="GDPR request",
    )
    assert read_review(graph, 10)[2] == []
    named = graph.read(
        "reviews naming bob",
        "MATCH (r:DeviceReview) WHERE r.reason CONTAINS 'bob@' RETURN count(r) AS n",
    )
    assert named[0]["n"] == 0
