"""A small known world for API tests: Ann (two cookies), Bob, a kiosk cookie shared by three
customers, and a cookie with a phone that is Bob's though nothing links them yet."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from identity.store.driver import Graph
from identity.store.schema import init_schema
from tests.resolving import identify, identity_of, load_events, run


def track(n: int, cookie: str, event: str, day: int = 275) -> dict[str, Any]:
    at = datetime(2026, 1, 1, 12, tzinfo=UTC) + timedelta(days=day - 1)
    return {
        "type": "track",
        "messageId": f"t{n}",
        "timestamp": at.isoformat().replace("+00:00", "Z"),
        "anonymousId": cookie,
        "event": event,
    }


EVENTS = [
    identify(1, user="C1", cookie="ck-a1", email="ann@example.org", first_name="Ann"),
    identify(2, cookie="ck-a2", email="ann@example.org", day=280),
    track(3, "ck-a1", "Order Completed"),
    track(4, "ck-a1", "Order Completed", day=290),
    identify(5, user="C2", cookie="ck-b", email="bob@example.org", first_name="Bob"),
    identify(6, user="C3", cookie="ck-kiosk"),
    identify(7, user="C4", cookie="ck-kiosk"),
    identify(8, user="C5", cookie="ck-kiosk"),
    identify(9, cookie="ck-b2", phone="+33 6 71 82 93 04"),  # Bob's, as a steward will find
]


def load_people(graph: Graph, tmp_path: Path) -> dict[str, str]:
    """Load and resolve the world; the identity ids of ann, bob, the kiosk cookie, the phone."""
    init_schema(graph)
    load_events(graph, tmp_path, "people", EVENTS)
    run(graph, tmp_path)
    return {
        "ann": identity_of(graph, "crm_id:C1"),
        "bob": identity_of(graph, "crm_id:C2"),
        "kiosk": identity_of(graph, "cookie:ck-kiosk"),
        "phone": identity_of(graph, "phone:+33671829304"),
    }
