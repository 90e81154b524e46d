"""Webhooks and subscriptions end to end: a real ``idgraph serve`` delivering to a receiver on
loopback that checks signatures, killed mid-send and restarted; a subscription through gql's
WebSocket transport; the admin fields and the CLI."""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gql import Client, GraphQLRequest
from gql.transport.exceptions import TransportQueryError
from gql.transport.websockets import WebsocketsTransport

from identity.config import Settings
from identity.store.driver import Graph
from tests.api_data import load_people
from tests.api_server import ADMIN, MARKETER, READER, STEWARD, WRITE_KEY, data, gql, serve
from tests.api_server import server_env as api_env
from tests.receiver import receiving

pytestmark = pytest.mark.neo4j

SECRET = "receiver-secret-0001"
FAST = {
    "IDGRAPH_OUTBOX_POLL": "0.05",
    "IDGRAPH_WEBHOOK_RETRY_BASE": "0.05",
    "IDGRAPH_WEBHOOK_RETRY_MAX": "0.2",
    "IDGRAPH_WEBHOOK_TIMEOUT": "2",
}
CREATE = """mutation($url: String!, $kinds: [WebhookKind!]!, $secret: String) {
  createWebhook(url: $url, kinds: $kinds, secret: $secret, description: "crm sync") {
    secret webhook { id url kinds enabled includeIdentifiers createdBy } } }"""
PAIR = """mutation($a: IdentifierInput!, $b: IdentifierInput!, $reason: String!) {
  %s(a: $a, b: $b, reason: $reason) { action identities { id } } }"""
DELIVERIES = """query($id: ID!, $status: DeliveryStatus, $after: String) {
  webhookDeliveries(webhookId: $id, status: $status, first: 3, after: $after) {
    edges { cursor node { id sequence kind status attempts lastStatusCode deliveredAt } }
    pageInfo { hasNextPage endCursor } } }"""
ANN = ({"type": "cookie", "value": "ck-a2"}, {"type": "email", "value": "ann@example.org"})
BOB = ({"type": "crm_id", "value": "C2"}, {"type": "phone", "value": "+33 6 71 82 93 04"})


@pytest.fixture(scope="module")
def server(neo4j_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("webhooks") / "server.log"
    with serve({**api_env(neo4j_settings), **FAST}, log) as base:
        yield base


def _webhook(base: str, url: str, kinds: list[str]) -> str:
    made = data(base, CREATE, ADMIN, url=url, kinds=kinds, secret=SECRET)["createWebhook"]
    assert made["secret"] == SECRET and made["webhook"]["createdBy"] == "admin-bob"
    return str(made["webhook"]["id"])


def _pair(base: str, field: str, pair: tuple[dict[str, str], ...], reason: str) -> Any:
    a, b = pair
    return data(base, PAIR % field, STEWARD, a=a, b=b, reason=reason)[field]


ALL = [
    "IDENTITY_CREATED",
    "IDENTITY_MERGED",
    "IDENTITY_SPLIT",
    "IDENTITY_FORGOTTEN",
    "STEWARD_ACTION",
    "SEGMENT_ENTERED",
    "SEGMENT_LEFT",
]


def test_each_kind_of_change_is_delivered_signed(server: str, graph: Graph, tmp_path: Path) -> None:
    people = load_people(graph, tmp_path)
    with receiving(SECRET) as receiver:
        hook = _webhook(server, receiver.url, ALL)
        _pair(server, "cutLink", ANN, "shared laptop")
        receiver.wait_for(1, kind="identity.split")
        _pair(server, "restoreLink", ANN, "same person")
        receiver.wait_for(1, kind="identity.merged")
        forgotten = data(
            server,
            'mutation { forgetProfile(identifier: {type: "crm_id", value: "C2"}, '
            'reason: "erasure request") { identityId } }',
            ADMIN,
        )["forgetProfile"]["identityId"]
        made = data(
            server,
            'mutation { createSegment(name: "known", definition: {has_identifier: "crm_id"}) '
            "{ id } }",
            MARKETER,
        )["createSegment"]["id"]
        data(
            server,
            "mutation($id: ID!) { refreshSegment(id: $id) { refresh { entered } } }",
            MARKETER,
            id=made,
        )
        sent = httpx.post(
            f"{server}/v1/identify",
            json={"userId": "C9", "anonymousId": "ck-new", "messageId": "m-new"},
            auth=(WRITE_KEY, ""),
        )
        assert sent.status_code == 200, sent.text
        receiver.wait_for(1, kind="identity.created")
        receiver.wait_for(1, kind="segment.entered")
        receiver.wait_for(1, kind="identity.forgotten")
        receiver.wait_for(2, kind="steward.action")
    assert all(r.signed for r in receiver.got)
    assert len({r.delivery for r in receiver.got}) == len(receiver.got)
    sequence = [b["sequence"] for b in receiver.bodies()]
    assert sequence == sorted(sequence)
    split = receiver.bodies("identity.split")[0]
    assert {"id": people["ann"], "role": "split"} in split["identities"]
    assert {i["role"] for i in split["identities"]} == {"split", "part"}
    merged = receiver.bodies("identity.merged")[0]
    assert {i["role"] for i in merged["identities"]} == {"survivor", "merged"}
    cut = receiver.bodies("steward.action")[0]
    assert cut["action"] == "cut_link" and cut["actor"] == "steward-alice"
    assert {i["role"] for i in cut["identities"]} == {"before"}  # the same whenever it is read
    assert receiver.bodies("identity.forgotten")[0]["identities"] == [
        {"id": forgotten, "role": "forgotten"}
    ]
    page = receiver.bodies("segment.entered")[0]
    assert page["segment"]["id"] == made and page["segment"]["page"] == 1
    assert {i["role"] for i in page["identities"]} == {"entered"}
    assert people["ann"] in {i["id"] for i in page["identities"]}
    # no identifier values: the webhook did not ask for them
    text = str(receiver.bodies())
    assert "@" not in text and "ck-a2" not in text and "C9" not in text
    # the deliveries, through the admin API, page by page
    page1 = data(server, DELIVERIES, ADMIN, id=hook, status="DELIVERED")["webhookDeliveries"]
    assert page1["pageInfo"]["hasNextPage"] and len(page1["edges"]) == 3
    nodes = [e["node"] for e in page1["edges"]]
    assert all(n["status"] == "DELIVERED" and n["lastStatusCode"] == 204 for n in nodes)
    after = page1["pageInfo"]["endCursor"]
    page2 = data(server, DELIVERIES, ADMIN, id=hook, after=after)["webhookDeliveries"]
    assert page2["edges"][0]["node"]["sequence"] < nodes[-1]["sequence"]
    metrics = httpx.get(f"{server}/metrics").text
    assert 'idgraph_webhook_attempts_total{outcome="delivered"}' in metrics
    assert "idgraph_webhook_oldest_undelivered_seconds" in metrics


def test_a_receiver_that_fails_five_times_gets_everything_in_order(
    server: str, graph: Graph, tmp_path: Path
) -> None:
    people = load_people(graph, tmp_path)
    with receiving(SECRET, fail_first=5) as receiver:
        hook = _webhook(
            server, receiver.url, ["IDENTITY_SPLIT", "IDENTITY_MERGED", "STEWARD_ACTION"]
        )
        for _ in range(2):
            _pair(server, "cutLink", ANN, "shared laptop")
            _pair(server, "restoreLink", ANN, "same person")
        receiver.wait_for(8)
        time.sleep(0.3)  # nothing more comes
    assert receiver.requests >= 13 and len(receiver.got) == 8
    kinds = [b["kind"] for b in receiver.bodies()]
    assert kinds == ["steward.action", "identity.split", "steward.action", "identity.merged"] * 2
    sequence = [b["sequence"] for b in receiver.bodies()]
    assert sequence == sorted(sequence)
    assert all(people["ann"] in {i["id"] for i in b["identities"]} for b in receiver.bodies())
    first = data(server, DELIVERIES, ADMIN, id=hook)["webhookDeliveries"]["edges"]
    assert all(e["node"]["status"] == "DELIVERED" for e in first)
    oldest = graph.read(
        "t",
        "MATCH (d:Delivery {webhook: $id}) RETURN min(d.seq) AS s, max(d.attempts) AS a",
        {"id": hook},
    )[0]
    assert oldest["a"] == 6  # five failures, then delivered


def test_a_receiver_that_hangs_delays_only_its_own_webhook(
    server: str, graph: Graph, tmp_path: Path
) -> None:
    load_people(graph, tmp_path)
    with receiving(SECRET, hold_all=True) as stuck, receiving(SECRET) as receiver:
        _webhook(server, stuck.url, ["STEWARD_ACTION"])
        _webhook(server, receiver.url, ["STEWARD_ACTION"])
        _pair(server, "cutLink", ANN, "shared laptop")
        receiver.wait_for(1)
        assert stuck.held.wait(5)  # its delivery hangs until the 2 s timeout, then again
        _pair(server, "restoreLink", ANN, "same person")
        answered = time.time()
        receiver.wait_for(2, timeout=10)
        assert receiver.got[1].at - answered < 1.0
        assert stuck.got == []


def _transport(base: str, key: str) -> WebsocketsTransport:
    return WebsocketsTransport(
        url=base.replace("http://", "ws://") + "/graphql",
        subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
        init_payload={"Authorization": f"Bearer {key}"},
    )


def _subscribe(
    base: str,
    query: str,
    variables: dict[str, Any],
    into: queue.Queue[Any],
    count: int,
    key: str = READER,
) -> threading.Thread:
    """Follow a subscription in a thread of its own until ``count`` results came, each put
    into ``into`` with its time of receipt (an error too)."""

    async def follow() -> None:
        async with Client(transport=_transport(base, key)) as session:
            request = GraphQLRequest(query, variable_values=variables)
            async for result in session.subscribe(request):
                into.put((time.monotonic(), result))
                count_left[0] -= 1
                if not count_left[0]:
                    return

    count_left = [count]

    def run() -> None:
        try:
            asyncio.run(follow())
        except Exception as e:  # reported to the test through the queue
            into.put((time.monotonic(), e))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


EVENTS = """subscription($after: String) {
  identityEvents(kinds: [MERGED, STEWARD], after: $after) {
    cursor node { id kind action actor identities { id role } } } }"""


def test_a_subscription_receives_a_merge_within_a_second(
    server: str, graph: Graph, tmp_path: Path
) -> None:
    people = load_people(graph, tmp_path)
    got: queue.Queue[Any] = queue.Queue()
    following = _subscribe(server, EVENTS, {}, got, 2)
    time.sleep(1.0)  # connected and following
    merged = _pair(server, "forceMerge", BOB, "same customer: the phone is on the account")
    done = time.monotonic()
    assert merged["action"] == "force_merge"
    _, first = got.get(timeout=10)
    assert not isinstance(first, Exception), first
    assert first["identityEvents"]["node"]["kind"] == "steward"
    at, second = got.get(timeout=10)
    event = second["identityEvents"]["node"]
    assert event["kind"] == "merged" and at - done < 1.0
    assert {i["role"] for i in event["identities"]} == {"survivor", "merged"}
    assert {people["bob"], people["phone"]} == {i["id"] for i in event["identities"]}
    # resuming after the first edge gives the second again, and nothing before it
    again: queue.Queue[Any] = queue.Queue()
    resuming = _subscribe(server, EVENTS, {"after": first["identityEvents"]["cursor"]}, again, 1)
    _, resumed = again.get(timeout=10)
    assert resumed == second
    following.join(5)
    resuming.join(5)


SEGMENT_CHANGES = """subscription($id: ID!, $after: String) {
  segmentChanges(segmentId: $id, after: $after) { cursor node { identityId change } } }"""


def test_a_segment_subscription_follows_refreshes(
    server: str, graph: Graph, tmp_path: Path
) -> None:
    people = load_people(graph, tmp_path)
    made = data(
        server,
        'mutation { createSegment(name: "known", definition: {has_identifier: "crm_id"}) { id } }',
        MARKETER,
    )["createSegment"]["id"]
    got: queue.Queue[Any] = queue.Queue()
    following = _subscribe(server, SEGMENT_CHANGES, {"id": "known"}, got, 5, MARKETER)
    time.sleep(1.0)
    refresh = "mutation($id: ID!) { refreshSegment(id: $id) { refresh { entered } } }"
    assert data(server, refresh, MARKETER, id=made)["refreshSegment"]["refresh"]["entered"] == 5
    edges = [got.get(timeout=10)[1]["segmentChanges"] for _ in range(5)]
    following.join(5)
    assert {e["node"]["change"] for e in edges} == {"entered"}
    assert people["ann"] in {e["node"]["identityId"] for e in edges}
    # resuming after the second change gives the three after it
    again: queue.Queue[Any] = queue.Queue()
    variables = {"id": made, "after": edges[1]["cursor"]}
    resuming = _subscribe(server, SEGMENT_CHANGES, variables, again, 3, MARKETER)
    rest = [again.get(timeout=10)[1]["segmentChanges"] for _ in range(3)]
    resuming.join(5)
    assert rest == edges[2:]
    # a reader may not follow segments
    denied: queue.Queue[Any] = queue.Queue()
    _subscribe(server, SEGMENT_CHANGES, {"id": made}, denied, 1).join(10)
    _, error = denied.get(timeout=10)
    assert "FORBIDDEN" in str(error) or "may not" in str(error)


def test_subscriptions_need_a_valid_key(server: str) -> None:
    async def follow(**options: Any) -> None:
        # made inside the loop: a transport made outside would make a loop of its own
        transport = WebsocketsTransport(
            url=server.replace("http://", "ws://") + "/graphql",
            subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
            **options,
        )
        async with Client(transport=transport) as session:
            async for _ in session.subscribe(GraphQLRequest(EVENTS)):
                raise AssertionError("a subscription without a valid key got a result")

    with pytest.raises(Exception, match=r"4403|Forbidden|Closed"):
        asyncio.run(follow(init_payload={"Authorization": "Bearer not-a-key"}))
    with pytest.raises(Exception, match=r"4403|Forbidden|Closed"):
        asyncio.run(follow(headers={"Authorization": "Bearer not-a-key"}))


def test_a_websocket_carries_subscriptions_only(server: str) -> None:
    async def ask() -> None:
        async with Client(transport=_transport(server, READER)) as session:
            await session.execute(GraphQLRequest("{ stats { links } }"))

    with pytest.raises(TransportQueryError, match="only subscriptions over WebSocket"):
        asyncio.run(ask())


def test_admin_fields_check_roles_and_input(server: str, graph: Graph, tmp_path: Path) -> None:
    load_people(graph, tmp_path)
    denied = gql(
        server, CREATE, {"url": "http://127.0.0.1:9/", "kinds": ["IDENTITY_MERGED"]}, MARKETER
    )
    assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    bad = gql(
        server, CREATE, {"url": "http://169.254.169.254/", "kinds": ["IDENTITY_MERGED"]}, ADMIN
    )
    assert bad["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "metadata" in bad["errors"][0]["message"]
    made = data(server, CREATE, ADMIN, url="http://127.0.0.1:9/", kinds=["SEGMENT_LEFT"])
    assert len(made["createWebhook"]["secret"]) >= 32  # generated
    hook = made["createWebhook"]["webhook"]["id"]
    listed = data(server, "{ webhooks { id kinds enabled } }", ADMIN)["webhooks"]
    assert listed == [{"id": hook, "kinds": ["segment.left"], "enabled": True}]
    changed = data(
        server,
        "mutation($id: ID!) { updateWebhook(id: $id, enabled: false, kinds: [SEGMENT_ENTERED]) "
        "{ enabled kinds } }",
        ADMIN,
        id=hook,
    )["updateWebhook"]
    assert changed == {"enabled": False, "kinds": ["segment.entered"]}
    again = data(server, "mutation($id: ID!) { redeliverWebhook(webhookId: $id) }", ADMIN, id=hook)
    assert again["redeliverWebhook"] == 0
    gone = data(server, "mutation($id: ID!) { deleteWebhook(id: $id) }", ADMIN, id=hook)
    assert gone["deleteWebhook"] == hook
    missing = gql(server, 'mutation { deleteWebhook(id: "wh-none") }', key=ADMIN)
    assert missing["errors"][0]["extensions"]["code"] == "NOT_FOUND"
