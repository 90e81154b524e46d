"""The resolve benchmark's graph: person-like identifiers and links written straight into
Neo4j, and Segment batches that come back to those people (see ``benchmarks/resolve.py``)."""

from __future__ import annotations

import random
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from identity.config import Settings
from identity.normalize import DEFAULT_TYPES, make_normalizer
from identity.policy import Policy
from identity.store.driver import Graph
from identity.store.rows import label_for
from loaders.synth import DOMAINS, FIRST_NAMES, LAST_NAMES

DAY_MS = 86_400_000
SETUP_BATCH = "bench-setup"
SETUP_CHUNK = 10_000
EVENT_KINDS = {  # incremental events: kind -> weight
    "return visit": 30,
    "new browser": 20,
    "anonymous page": 20,
    "newcomer": 10,
    "app": 10,
    "friend's browser": 5,
    "kiosk": 5,
}


# -- the graph ---------------------------------------------------------------------------------


@dataclass(slots=True)
class Person:
    crm: int = -1  # node indices, -1: none
    email: int = -1
    phone: int = -1
    device: int = -1
    maid: int = -1
    cookies: list[int] = field(default_factory=list)


class PersonGraph:
    """The benchmark graph (see the module docstring): node keys, types and link ends."""

    def __init__(self, identifiers: int, seed: int) -> None:
        self.rng = random.Random(seed)
        self.keys: list[str] = []
        self.link_a: list[int] = []
        self.link_b: list[int] = []
        self.link_third: list[bool] = []
        self.people: list[Person] = []
        self.kiosks: list[int] = []
        people_guess = max(identifiers // 5, 1)
        n_kiosks = max(1, people_guess // 60_000)
        n_tablets = max(2, people_guess // 20_000)
        n_stores = max(1, people_guess // 100_000)
        n_families = max(1, people_guess // 2_000)
        budget = identifiers - n_kiosks - 3 * n_tablets - n_stores - n_families
        while len(self.keys) < budget:
            self.people.append(self._person(len(self.people)))
        self._truncate(budget)
        self._friends(max(1, len(self.people) // 200))
        for _ in range(n_kiosks):
            self._kiosk(min(30, len(self.people)))
        for _ in range(n_tablets):
            self._tablet()
        for n in range(n_stores):
            self._store_email(n, min(40, len(self.people)))
        for n in range(n_families):
            self._family_email(n)
        self.a, self.b, self.third = self._oriented()

    def node(self, type_: str, value: str) -> int:
        self.keys.append(f"{type_}:{value}")
        return len(self.keys) - 1

    def link(self, x: int, y: int, *, third: bool = False) -> None:
        if x >= 0 and y >= 0 and x != y:
            self.link_a.append(x)
            self.link_b.append(y)
            self.link_third.append(third)

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _person(self, p: int) -> Person:
        r, pick = self.rng.random, self.rng.choice
        person = Person()
        customer = r() < 0.7
        if customer:
            person.crm = self.node("crm_id", f"C{p:08d}")
        if not customer or r() < 0.8:
            name = f"{pick(FIRST_NAMES).lower()}.{pick(LAST_NAMES).lower()}{p}"
            person.email = self.node("email", f"{name}@{pick(DOMAINS)}")
        if r() < 0.45:
            person.phone = self.node("phone", f"+3376{p:07d}")  # valid French mobiles
        anchors = [x for x in (person.crm, person.email, person.phone) if x >= 0]
        for i, x in enumerate(anchors):
            for y in anchors[i + 1 :]:
                self.link(x, y)
        if customer and person.phone >= 0 and r() < 0.01:  # old numbers: over the phone limit
            for prefix in ("+3377", "+3378", "+3379"):
                self.link(person.crm, self.node("phone", f"{prefix}{p:07d}"))
        cookies = self.rng.choices(range(1, 9), weights=(15, 25, 20, 15, 10, 7, 5, 3))[0]
        for k in range(cookies):  # each browser cookie: logins link it to every anchor
            cookie = self.node("cookie", self.uuid())
            person.cookies.append(cookie)
            for anchor in anchors:
                self.link(cookie, anchor)
            if k and r() < 0.7:  # alias: previousId -> anonymousId
                self.link(person.cookies[k - 1], cookie)
        if r() < 0.3:  # an app install: device.id, advertisingId and the app's anonymousId
            person.device = self.node("device", self.uuid().upper())
            if r() < 0.85:
                person.maid = self.node("maid", self.uuid())
            app_cookie = self.node("cookie", self.uuid())
            person.cookies.append(app_cookie)
            install = [person.device, person.maid, app_cookie]
            for i, x in enumerate(install):
                for y in install[i + 1 :]:
                    self.link(x, y)
                for anchor in anchors:
                    self.link(x, anchor)
        if r() < 0.35:  # known to the DMP: third-party links to synced cookies
            dmp = self.node("dmp_id", f"{self.rng.getrandbits(64):016x}")
            owner = self.people[-1] if self.people and r() < 0.05 else person  # a wrong match
            for cookie in self.rng.sample(owner.cookies, min(len(owner.cookies), 3)):
                self.link(dmp, cookie, third=True)
        return person

    def _truncate(self, budget: int) -> None:
        """Drop the identifiers past ``budget`` (the end of the last person) and their links."""
        del self.keys[budget:]
        kept = [
            j
            for j, (x, y) in enumerate(zip(self.link_a, self.link_b, strict=True))
            if x < budget and y < budget
        ]
        self.link_a = [self.link_a[j] for j in kept]
        self.link_b = [self.link_b[j] for j in kept]
        self.link_third = [self.link_third[j] for j in kept]
        last = self.people[-1]
        for name in ("crm", "email", "phone", "device", "maid"):
            if getattr(last, name) >= budget:
                setattr(last, name, -1)
        last.cookies = [c for c in last.cookies if c < budget]
        if not last.cookies and last.crm < 0 and last.email < 0:
            self.people.pop()

    def _friends(self, count: int) -> None:
        """Someone logs in on a friend's browser: two crm ids (or emails) in one component."""
        for _ in range(count):
            host, guest = self.rng.sample(self.people, 2)
            if host.cookies:
                cookie = self.rng.choice(host.cookies)
                self.link(cookie, guest.crm)
                self.link(cookie, guest.email)

    def _kiosk(self, users: int) -> None:
        kiosk = self.node("cookie", f"kiosk-{len(self.kiosks)}-{self.uuid()}")
        self.kiosks.append(kiosk)
        for person in self.rng.sample(self.people, users):
            self.link(kiosk, person.crm)
            self.link(kiosk, person.email)

    def _tablet(self) -> None:
        """A family tablet (device, maid, app cookie) on which two customers log in."""
        customers = [p for p in self.rng.sample(self.people, 10) if p.crm >= 0][:2]
        tablet = [
            self.node("device", self.uuid().upper()),
            self.node("maid", self.uuid()),
            self.node("cookie", self.uuid()),
        ]
        for i, x in enumerate(tablet):
            for y in tablet[i + 1 :]:
                self.link(x, y)
            for person in customers:
                self.link(x, person.crm)

    def _store_email(self, n: int, users: int) -> None:
        """A shop's address typed in a form on many people's own cookies (two-hop shared)."""
        store = self.node("email", f"contact@shop{n}.fr")
        with_email = [p for p in self.people if p.email >= 0 and p.cookies]
        for person in self.rng.sample(with_email, min(users, len(with_email))):
            self.link(store, self.rng.choice(person.cookies))

    def _family_email(self, n: int) -> None:
        """An address typed on the browsers of two people who each have their own: a bridge."""
        couple = [p for p in self.rng.sample(self.people, 20) if p.email >= 0 and p.cookies][:2]
        family = self.node("email", f"family.{n}@{self.rng.choice(DOMAINS)}")
        for person in couple:
            self.link(family, self.rng.choice(person.cookies))

    def _oriented(
        self,
    ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int32], npt.NDArray[np.bool_]]:
        """Links once per pair, each from its smaller key to its larger, as the writer has them."""
        rank = np.empty(len(self.keys), dtype=np.int64)
        rank[sorted(range(len(self.keys)), key=self.keys.__getitem__)] = np.arange(len(self.keys))
        a = np.array(self.link_a, dtype=np.int64)
        b = np.array(self.link_b, dtype=np.int64)
        third = np.array(self.link_third, dtype=np.bool_)
        swap = rank[a] > rank[b]
        a[swap], b[swap] = b[swap], a[swap]
        _, first = np.unique(a * len(self.keys) + b, return_index=True)
        first.sort()
        return a[first].astype(np.int32), b[first].astype(np.int32), third[first]

    def type_counts(self) -> dict[str, int]:
        return dict(Counter(key.partition(":")[0] for key in self.keys).most_common())


def check_keys(g: PersonGraph, settings: Settings, policy: Policy) -> None:
    """The keys are what the loaders would store: a sample goes through the normalizer."""
    normalizer = make_normalizer(settings, policy)
    for key in random.Random(0).sample(g.keys, min(2000, len(g.keys))):
        type_, _, value = key.partition(":")
        got = normalizer.normalize(type_, value)
        if getattr(got, "key", None) != key:
            raise AssertionError(f"generated {key!r}, but a loader would store {got!r}")


_CREATE_IDENTIFIERS = """
UNWIND $rows AS row
CREATE (i:Identifier {key: row.key, type: row.type, value: row.value, seen: row.seen,
                      first_seen: datetime({epochMillis: row.first}),
                      last_seen: datetime({epochMillis: row.last}),
                      sources: ['segment'], batch: $batch})
SET i:$(row.label), i += row.says
FOREACH (_ IN CASE WHEN size(keys(row.says)) > 0 THEN [1] ELSE [] END | SET i:Stated)
"""
_CREATE_LINKS = """
UNWIND $rows AS row
MATCH (a:Identifier {key: row.a})
MATCH (b:Identifier {key: row.b})
WITH a, b, row, datetime({epochMillis: row.first}) AS first
CREATE (a)-[:LINKED {first_seen: first, last_seen: datetime({epochMillis: row.last}),
                     count: row.count, sources: [row.source], party: row.party,
                     evidence: [toString(first) + ' ' + $batch + ':' + row.ref]}]->(b)
"""


_CITIES = ("Paris", "Lyon", "Lille", "Nantes", "Oslo", "Porto", "Turin")
_PLANS = ("free", "pro", "team")


def _says(type_: str, i: int, first_ms: int, last_ms: int) -> dict[str, Any]:
    """What the identifier says, as loads store it: a CRM record's traits on crm ids, a
    name on emails, page views on cookies and app opens on devices (profiles read these)."""
    first = datetime.fromtimestamp(first_ms / 1000, UTC)
    last = datetime.fromtimestamp(last_ms / 1000, UTC)
    if type_ == "crm_id":
        return {
            "trait.crm.city": _CITIES[i % len(_CITIES)],
            "trait_at.crm.city": last,
            "trait.crm.plan": _PLANS[i % len(_PLANS)],
            "trait_at.crm.plan": first,
            "trait.crm.consent_marketing": i % 3 != 0,
            "trait_at.crm.consent_marketing": last,
        }
    if type_ == "email":
        return {"trait.segment.first_name": f"n{i % 997}", "trait_at.segment.first_name": last}
    event = {"cookie": "Page Viewed", "device": "App Opened"}.get(type_)
    if event is None:
        return {}
    return {
        f"event_count.{event}": 1 + i % 17,
        f"event_first.{event}": first,
        f"event_last.{event}": last,
    }


def write_graph(graph: Graph, g: PersonGraph, seed: int, now_ms: int) -> None:
    """Identifiers, links and the completed set-up batch, as the loaders would have left them."""
    rng = np.random.default_rng(seed)
    n, m = len(g.keys), len(g.a)
    node_last = now_ms - rng.integers(0, 20 * DAY_MS, n)
    node_first = node_last - rng.integers(0, 400 * DAY_MS, n)
    node_seen = rng.geometric(0.2, n)
    link_last = now_ms - rng.integers(0, 20 * DAY_MS, m)
    link_first = link_last - rng.integers(0, 300 * DAY_MS, m)
    link_count = rng.geometric(0.3, m)
    labels = {t: label_for(t) for t in DEFAULT_TYPES}
    for start in range(0, n, SETUP_CHUNK):
        rows = []
        for i in range(start, min(start + SETUP_CHUNK, n)):
            type_, _, value = g.keys[i].partition(":")
            rows.append(
                {
                    "key": g.keys[i],
                    "type": type_,
                    "value": value,
                    "label": labels[type_],
                    "first": int(node_first[i]),
                    "last": int(node_last[i]),
                    "seen": int(node_seen[i]),
                    "says": _says(type_, i, int(node_first[i]), int(node_last[i])),
                }
            )
        graph.run("create identifiers", _CREATE_IDENTIFIERS, {"rows": rows, "batch": SETUP_BATCH})
    a, b, third = g.a.tolist(), g.b.tolist(), g.third.tolist()
    for start in range(0, m, SETUP_CHUNK):
        rows = [
            {
                "a": g.keys[a[j]],
                "b": g.keys[b[j]],
                "first": int(link_first[j]),
                "last": int(link_last[j]),
                "count": int(link_count[j]),
                "ref": str(j),
                "party": "third" if third[j] else "first",
                "source": "dmp" if third[j] else "segment",
            }
            for j in range(start, min(start + SETUP_CHUNK, m))
        ]
        graph.run("create links", _CREATE_LINKS, {"rows": rows, "batch": SETUP_BATCH})
    graph.run(
        "create set-up batch",
        """
        MERGE (s:Source {name: 'segment'}) ON CREATE SET s.party = 'first'
        MERGE (d:Source {name: 'dmp'}) ON CREATE SET d.party = 'third'
        CREATE (b:Batch {id: $id, source: 'segment', party: 'first', kind: 'benchmark',
                         status: 'completed', started_at: datetime(), finished_at: datetime(),
                         chunk_size: $chunk, chunks_done: 1, read: $n, accepted: $n,
                         rejected: 0, rejected_values: 0})
        CREATE (b)-[:FROM]->(s)
        """,
        {"id": SETUP_BATCH, "n": n, "chunk": SETUP_CHUNK},
    )


# -- incremental batches -----------------------------------------------------------------------


def batch_events(g: PersonGraph, seed: int, batch: int, count: int) -> list[dict[str, Any]]:
    """``count`` Segment events touching the graph's people (see ``EVENT_KINDS``)."""
    rng = random.Random(f"{seed}/{batch}")
    now = datetime.now(UTC)
    people = [p for p in g.people if p.cookies]
    customers = [p for p in people if p.crm >= 0]
    app_users = [p for p in people if p.device >= 0]

    def value(node: int) -> str:
        return g.keys[node].partition(":")[2]

    def login(person: Person, cookie: str) -> dict[str, Any]:
        event: dict[str, Any] = {"type": "identify", "anonymousId": cookie}
        if person.crm >= 0:
            event["userId"] = value(person.crm)
        if person.email >= 0:
            event["traits"] = {"email": value(person.email)}
        return event

    kinds = rng.choices(list(EVENT_KINDS), weights=list(EVENT_KINDS.values()), k=count)
    events = []
    for n, kind in enumerate(kinds):
        person = rng.choice(people)
        new_cookie = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        if kind == "return visit":
            event = login(person, value(rng.choice(person.cookies)))
        elif kind == "new browser":
            event = login(person, new_cookie)
        elif kind == "anonymous page":
            cookie = value(rng.choice(person.cookies))
            event = {"type": "page", "name": "Home", "anonymousId": cookie}
        elif kind == "newcomer":
            event = {"type": "page", "name": "Landing", "anonymousId": new_cookie}
            if rng.random() < 0.5:
                email = f"new.{seed}.{batch}.{n}@{rng.choice(DOMAINS)}"
                event = {"type": "identify", "anonymousId": new_cookie, "traits": {"email": email}}
        elif kind == "app":
            user = rng.choice(app_users)
            device = {"id": value(user.device)}
            if user.maid >= 0:
                device["advertisingId"] = value(user.maid)
            event = {"type": "track", "event": "App Opened", "context": {"device": device}}
            event["anonymousId"] = value(user.cookies[-1])
            if user.crm >= 0:
                event["userId"] = value(user.crm)
        elif kind == "friend's browser":
            event = login(rng.choice(customers), value(rng.choice(person.cookies)))
        else:  # kiosk
            event = login(rng.choice(customers), value(rng.choice(g.kiosks)))
        at = now - timedelta(seconds=rng.uniform(0, 3600))
        event["messageId"] = f"bench-{seed}-{batch}-{n}"
        event["timestamp"] = at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        events.append(event)
    return events
