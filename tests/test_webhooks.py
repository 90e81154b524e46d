"""Webhooks without a server: signatures, address rules, the order of sending, backoff; and
against Neo4j the outbox (numbering, queueing by kind, segment pages, recovery after a crash
mid-refresh, no identifiers after an erasure)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from identity.context import ServiceContext
from identity.errors import InputError
from identity.privacy import forget
from identity.segments import service as segments
from identity.steward import actions as steward
from identity.store import outbox
from identity.store import webhooks as store
from identity.store.driver import Graph
from identity.store.schema import init_schema
from identity.webhooks import payload, service, signing
from identity.webhooks.addresses import AddressGuard, RefusedAddress, check_url
from identity.webhooks.sending import backoff
from identity.webhooks.worker import sendable
from tests.api_data import load_people
from tests.resolving import run
from tests.services import services

SECRET = "a-secret-of-twenty-chars"


def test_signature_binds_body_and_time() -> None:
    body = b'{"kind":"identity.merged"}'
    now = time.time()
    headers = signing.headers(SECRET, "wh-1-1", "identity.merged", body, now)
    assert headers["X-Idgraph-Signature"].startswith("sha256=")
    assert signing.verify(SECRET, headers, body, now=now)
    assert signing.verify(SECRET, {k.lower(): v for k, v in headers.items()}, body, now=now)
    assert not signing.verify(SECRET, headers, body + b" ", now=now)  # body changed
    assert not signing.verify("another-secret-entirely", headers, body, now=now)
    assert not signing.verify(SECRET, headers, body, now=now + 301)  # replayed later
    forged = {**headers, "X-Idgraph-Timestamp": str(int(now) + 10)}
    assert not signing.verify(SECRET, forged, body, now=now)  # time changed: signature fails
    assert not signing.verify(SECRET, {}, body, now=now)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/x", "only http:// and https://"),
        ("file:///etc/passwd", "only http:// and https://"),
        ("http:///nohost", "has no host"),
        ("https://user:pw@example.com/", "credentials in the URL"),
        ("http://example.com:99999/", "is not a URL"),
    ],
)
def test_urls_refused_by_form(url: str, reason: str) -> None:
    with pytest.raises(InputError, match=reason):
        check_url(url)


def test_address_guard() -> None:
    guard = AddressGuard()
    for refused in ("169.254.169.254", "169.254.10.1", "[fe80::1]", "metadata.google.internal"):
        with pytest.raises(InputError, match="refused"):
            guard.check_literal(f"http://{refused}/hook")
        with pytest.raises(RefusedAddress):
            asyncio.run(guard.check(f"http://{refused}/hook"))
    for allowed in ("127.0.0.1", "10.1.2.3", "[::1]", "receiver.example.com"):
        guard.check_literal(f"http://{allowed}/hook")
    asyncio.run(guard.check("http://127.0.0.1:1/hook"))
    opened = AddressGuard("169.254.0.0/16, metadata.google.internal")
    opened.check_literal("http://169.254.169.254/")
    opened.check_literal("http://metadata.google.internal/")
    asyncio.run(opened.check("http://169.254.169.254/"))


def _queued(id: str, keys: list[str], due: int = 0) -> dict[str, Any]:
    return {"id": id, "keys": keys, "next_at": due}


def test_sendable_keeps_each_identity_in_order() -> None:
    queue = [
        _queued("1", ["A"]),
        _queued("2", ["B"], due=10_000),  # waiting for a retry: B is held back
        _queued("3", ["A", "C"]),  # after 1 (A): next round
        _queued("4", ["B"]),  # after 2 (B)
        _queued("5", ["D"]),
        _queued("6", ["C"]),  # after 3 (C), though 3 was not sent
        _queued("7", []),  # about no identity: never held back
    ]
    assert [d["id"] for d in sendable(queue, now_ms=5_000)] == ["1", "5", "7"]
    assert [d["id"] for d in sendable(queue[1:], now_ms=5_000)] == ["3", "5", "7"]
    assert [d["id"] for d in sendable(queue[1:], now_ms=20_000)] == ["2", "3", "5", "7"]
    # a later window starts with what the earlier ones hold back
    held: set[str] = set()
    assert [d["id"] for d in sendable(queue[:2], 5_000, held)] == ["1"]
    assert [d["id"] for d in sendable(queue[2:], 5_000, held)] == ["5", "7"]


def test_an_attempt_goes_to_the_address_checked() -> None:
    guard = AddressGuard()
    url, host, extensions = asyncio.run(guard.pinned("https://localhost:8443/hook?x=1"))
    assert url in ("https://127.0.0.1:8443/hook?x=1", "https://[::1]:8443/hook?x=1")
    assert host == "localhost:8443" and extensions == {"sni_hostname": "localhost"}
    plain = asyncio.run(guard.pinned("http://127.0.0.1:9/hook"))
    assert plain == ("http://127.0.0.1:9/hook", "127.0.0.1:9", {})


def test_backoff_grows_with_jitter_and_a_cap() -> None:
    for attempts, low, high in ((1, 2.5, 5), (2, 5, 10), (3, 10, 20), (12, 30, 60)):
        waits = [backoff(attempts, 5.0, 60.0) for _ in range(200)]
        assert all(low <= w <= high for w in waits)
        assert max(waits) - min(waits) > (high - low) / 4  # jittered


def _ctx(graph: Graph, tmp_path: Path) -> ServiceContext:
    return services(graph, tmp_path, actor="tester")


def _all_kinds(ctx: ServiceContext, url: str = "http://127.0.0.1:9/hook") -> service.Created:
    return service.create_webhook(ctx, url, list(service.KINDS), secret=SECRET)


@pytest.mark.neo4j
def test_outbox_numbers_changes_and_queues_them_by_kind(graph: Graph, tmp_path: Path) -> None:
    init_schema(graph)
    ctx = _ctx(graph, tmp_path)
    everything = _all_kinds(ctx).webhook
    merges = service.create_webhook(ctx, "http://127.0.0.1:9/m", ["identity.merged"]).webhook
    people = load_people(graph, tmp_path)  # creates identities: entries of identity.created
    assert outbox.pending(graph) > 0 and outbox.latest(graph) == 0
    while outbox.sequence(graph, batch=3):
        pass
    numbered = outbox.read_after(graph, 0, 1000)
    assert [r.seq for r in numbered] == list(range(1, len(numbered) + 1))
    assert {r.kind for r in numbered} == {"identity.created"}
    assert people["ann"] in {r.identities[0][0] for r in numbered}
    # a steward cut, then its split: one identity's order is the commit order
    steward.cut_link(ctx, "cookie:ck-a2", "email:ann@example.org", reason="shared laptop")
    run(graph, tmp_path)
    outbox.sequence(graph)
    later = outbox.read_after(graph, len(numbered), 100)
    assert [r.kind for r in later][:1] == ["steward.action"]
    assert "identity.split" in [r.kind for r in later]
    cut = later[0]
    assert cut.action == "cut_link" and cut.keys == ["cookie:ck-a2", "email:ann@example.org"]
    assert [people["ann"], "before"] in cut.identities
    for webhook in (everything, merges):
        assert store.claim(graph, webhook.id, "me", *_lease())
        store.fan_out(graph, webhook.id, "me", _lease()[0], 1000)
    queued = store.queue(graph, everything.id, 1000)
    assert [d["seq"] for d in queued] == [r.seq for r in numbered + later]
    assert store.queue(graph, merges.id, 1000) == []  # nothing merged yet
    assert store.fan_out(graph, everything.id, "me", _lease()[0], 1000) == 0  # never twice
    # another worker cannot take a lease that has not run out
    assert store.claim(graph, everything.id, "other", *_lease()) is None


def _lease() -> tuple[Any, Any]:
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    return now, now + timedelta(seconds=60)


@pytest.mark.neo4j
def test_segment_changes_go_out_in_pages_even_after_a_crash(
    graph: Graph, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    load_people(graph, tmp_path)
    ctx = _ctx(graph, tmp_path)
    monkeypatch.setattr(outbox, "PAGE_IDENTITIES", 2)
    segment = segments.create_segment(ctx, name="known", definition={"has_identifier": "crm_id"})
    done = segments.refresh_segment(ctx, segment.id)
    assert done.entered == 5  # Ann, Bob and the three kiosk customers
    outbox.sequence(graph)
    pages = outbox.read_after(graph, 0, 100, segment=segment.id)
    assert [(p.kind, p.page, len(p.identities)) for p in pages] == [
        ("segment.entered", 1, 2),
        ("segment.entered", 2, 2),
        ("segment.entered", 3, 1),
    ]
    members = {i for p in pages for i, role in p.identities if role == "entered"}
    assert len(members) == 5
    # a refresh that crashed after its changes committed, before announcing them
    store_rows = graph.read(
        "t", "MATCH ()-[r:INCLUDES|LEFT {announce: 'x'}]->() RETURN count(r) AS n"
    )
    assert store_rows[0]["n"] == 0
    gone = sorted(members)[0]
    graph.run(
        "t",
        "MATCH (s:Segment {id: $s})-[r:INCLUDES]->(p:Identity {id: $p}) DELETE r "
        "MERGE (s)-[l:LEFT]->(p) SET l.at = datetime(), l.announce = 'ref-crashed' "
        "CREATE (:SegmentRefresh {id: 'ref-crashed', segment: $s, at: datetime()})",
        {"s": segment.id, "p": gone},
    )
    segments.refresh_segment(ctx, segment.id)  # announces the crashed refresh first
    outbox.sequence(graph)
    after = outbox.read_after(graph, pages[-1].seq, 100, segment=segment.id)
    assert (after[0].kind, after[0].refresh, after[0].identities) == (
        "segment.left",
        "ref-crashed",
        [[gone, "left"]],
    )
    assert [p.kind for p in after][1:] == ["segment.entered"]  # it matches again: back in


@pytest.mark.neo4j
def test_identifiers_only_when_asked_and_never_after_an_erasure(
    graph: Graph, tmp_path: Path
) -> None:
    people = load_people(graph, tmp_path)
    outbox.sequence(graph)
    created = next(
        r for r in outbox.read_after(graph, 0, 100) if r.identities[0][0] == people["bob"]
    )
    alone = payload.document(created)
    assert "identifiers" not in alone["identities"][0] and "reason" not in alone
    assert "bob@example.org" not in payload.encode(alone).decode()
    held = outbox.identifiers_of(graph, [people["bob"]], 100)
    body = payload.document(created, held)
    assert {"type": "email", "value": "bob@example.org"} in body["identities"][0]["identifiers"]
    assert "bob@example.org" in body["reason"]
    ctx = _ctx(graph, tmp_path)
    forget.forget_profile(ctx, reason="erasure request", id=people["bob"])
    outbox.sequence(graph)
    erased = outbox.identifiers_of(graph, [people["bob"]], 100)
    assert erased == {people["bob"]: []}
    entries = outbox.read_after(graph, 0, 1000)
    assert entries[-1].kind == "identity.forgotten"
    text = b"".join(payload.encode(payload.document(r, erased)) for r in entries).decode()
    assert "bob@example.org" not in text and "C2" not in text


@pytest.mark.neo4j
def test_webhook_management_refuses_bad_input(graph: Graph, tmp_path: Path) -> None:
    init_schema(graph)
    ctx = _ctx(graph, tmp_path)
    with pytest.raises(InputError, match="unknown webhook kinds"):
        service.create_webhook(ctx, "http://127.0.0.1:9/", ["identity.exploded"])
    with pytest.raises(InputError, match="at least one kind"):
        service.create_webhook(ctx, "http://127.0.0.1:9/", [])
    with pytest.raises(InputError, match="at least 16"):
        service.create_webhook(ctx, "http://127.0.0.1:9/", ["identity.merged"], secret="short")
    with pytest.raises(InputError, match="metadata"):
        service.create_webhook(ctx, "http://169.254.169.254/latest", ["identity.merged"])
    made = _all_kinds(ctx)
    assert made.secret == SECRET
    changed = service.update_webhook(ctx, made.webhook.id, enabled=False, kinds=["segment.left"])
    assert not changed.enabled and changed.kinds == ["segment.left"]
    assert [w.id for w in service.list_webhooks(ctx)] == [made.webhook.id]
    with pytest.raises(InputError, match="unknown delivery status"):
        service.deliveries(ctx, made.webhook.id, status="lost")
    service.delete_webhook(ctx, made.webhook.id)
    with pytest.raises(InputError, match="no webhook"):
        service.get_webhook(ctx, made.webhook.id)
