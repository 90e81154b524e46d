"""Helpers for resolution tests: load small Segment batches, resolve, read identities back."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from identity.config import Settings, load_settings
from identity.normalize import make_normalizer
from identity.policy import Policy
from identity.resolve.engine import resolve
from identity.resolve.service import ResolveReport, resolve_identities
from identity.resolve.snapshot import read_full
from identity.store.driver import Graph
from identity.store.identities import stream_identities
from tests.loading import load_csv, load_segment
from tests.services import services

AS_OF = datetime(2026, 11, 1, tzinfo=UTC)


def settings(tmp_path: Path) -> Settings:
    return load_settings(rejects_dir=tmp_path / "rejects")


def identify(
    n: int, *, user: str | None = None, cookie: str | None = None, day: int = 274, **traits: Any
) -> dict[str, Any]:
    """One identify event (message id ``m<n>``) on day ``day`` of 2026 (274: October 1st)."""
    at = datetime(2026, 1, 1, 10, tzinfo=UTC) + timedelta(days=day - 1)
    event: dict[str, Any] = {
        "type": "identify",
        "messageId": f"m{n}",
        "timestamp": at.isoformat().replace("+00:00", "Z"),
        "traits": traits,
    }
    if user is not None:
        event["userId"] = user
    if cookie is not None:
        event["anonymousId"] = cookie
    return event


def load_events(graph: Graph, tmp_path: Path, name: str, events: list[dict[str, Any]]) -> None:
    path = tmp_path / f"{name}.ndjson"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    report = load_segment(graph, path, tmp_path / "rejects")
    assert report.counts.rejected == 0, report.counts


def load_cookie_sync(graph: Graph, tmp_path: Path, rows: str) -> None:
    """A third-party DMP cookie-sync table (``cookie,partner`` lines: a cookie and a dmp_id)."""
    data, mapping = tmp_path / "dmp.csv", tmp_path / "dmp.toml"
    data.write_text("cookie,partner\n" + rows)
    mapping.write_text(
        'source = "dmp"\nparty = "third"\n[identifiers]\ncookie = "cookie"\npartner = "dmp_id"\n'
    )
    report = load_csv(graph, data, mapping, tmp_path / "rejects")
    assert report.counts.rejected == 0, report.counts


def run(
    graph: Graph,
    tmp_path: Path,
    *,
    full: bool = False,
    policy: Policy | None = None,
    as_of: datetime = AS_OF,
    **kw: Any,
) -> ResolveReport:
    return resolve_identities(
        services(graph, tmp_path, policy or Policy()), full=full, as_of=as_of, **kw
    )


def stored(graph: Graph) -> set[frozenset[str]]:
    """The stored identities as sets of keys."""
    return {frozenset(f"{t}:{v}" for t, v in members) for _, members in stream_identities(graph)}


def identity_of(graph: Graph, key: str) -> str:
    rows = graph.read(
        "identity of",
        "MATCH (:Identifier {key: $key})-[:MEMBER_OF]->(p:Identity) RETURN p.id AS id",
        {"key": key},
    )
    assert len(rows) == 1, rows
    return str(rows[0]["id"])


def recomputed(
    graph: Graph, tmp_path: Path, policy: Policy | None = None, as_of: datetime = AS_OF
) -> set[frozenset[str]]:
    """The partition a full recompute gives, computed without writing."""
    policy = policy or Policy()
    snapshot = read_full(graph, policy, make_normalizer(settings(tmp_path), policy))
    return resolve(snapshot.graph, policy, int(as_of.timestamp() * 1000)).partition()


def check_invariants(graph: Graph) -> None:
    """Every identifier in exactly one active identity whose size counts its members.

    Expanded from each identifier: a pattern on ``:Identity {status}`` inside ``COUNT {}`` lets
    the planner scan the status index once per identifier (minutes at 46k identifiers)."""
    rows = graph.read(
        "membership invariants",
        """
        MATCH (i:Identifier)
        OPTIONAL MATCH (i)-[:MEMBER_OF]->(p)
        WITH i, collect(p.status) AS statuses
        RETURN i.key AS key, size([s IN statuses WHERE s = 'active']) AS n, size(statuses) AS any
        """,
    )
    bad = [r for r in rows if r["n"] != 1 or r["any"] != 1]
    assert not bad, bad[:5]
    sizes = graph.read(
        "identity sizes",
        """
        MATCH (p:Identity)
        RETURN p.id AS id, p.status AS status, p.size AS size,
               COUNT { (p)<-[:MEMBER_OF]-() } AS members
        """,
    )
    wrong = [r for r in sizes if r["members"] != (r["size"] if r["status"] == "active" else 0)]
    assert not wrong, wrong[:5]


def now_ms() -> int:
    return int(time.time() * 1000)
