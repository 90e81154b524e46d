"""Unit tests of identity.resolve.engine: networkx as the oracle on random graphs, invariants
under the default policy, then the rules one by one on hand-made graphs. No server needed."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from identity.policy import Policy, TypeRule
from identity.resolve.engine import (
    BLOCKED,
    CUT,
    EXPIRED,
    LIMIT,
    MERGED,
    QUARANTINED,
    SHARED,
    THIRD_PARTY,
    VERDICTS,
    Resolution,
    resolve,
)
from identity.resolve.graph import (
    BRIDGE,
    DAY_MS,
    DIRECT,
    NOT_SHARED,
    TWO_HOP,
    LinkGraph,
    LinkRow,
    NodeRow,
)
from identity.resolve.local import LimitConflict

TYPES = ("cookie", "email", "phone", "device", "maid", "crm_id", "dmp_id")
AS_OF = 1_000 * DAY_MS
Nodes = list[NodeRow]
Links = list[LinkRow]


def node(key: str, **kw: Any) -> NodeRow:
    """A node whose type is the prefix of its key."""
    return NodeRow(key, key.split(":", 1)[0], **kw)


def link(a: str, b: str, **kw: Any) -> LinkRow:
    """A link seen yesterday (as of ``AS_OF``) unless told otherwise."""
    kw.setdefault("last_seen", AS_OF - DAY_MS)
    return LinkRow(a, b, **kw)


def run(
    links: Sequence[LinkRow],
    nodes: Iterable[NodeRow] = (),
    policy: Policy | None = None,
    as_of: int = AS_OF,
) -> Resolution:
    """Resolve ``links``; ``nodes`` gives the nodes that need settings, the others are plain."""
    given_nodes = list(nodes)
    known = {n.key for n in given_nodes}
    for row in links:
        for key in (row.a, row.b):
            if key not in known:
                known.add(key)
                given_nodes.append(node(key))
    return resolve(LinkGraph.from_rows(given_nodes, links), policy or Policy(), as_of)


def groups(*members: Iterable[str]) -> set[frozenset[str]]:
    return {frozenset(m) for m in members}


def singletons(keys: Iterable[str]) -> set[frozenset[str]]:
    return {frozenset([k]) for k in keys}


def link_index(res: Resolution, a: str, b: str) -> int:
    g = res.graph
    wanted = {a, b}
    found = [j for j in range(len(g.a)) if {g.keys[g.a[j]], g.keys[g.b[j]]} == wanted]
    assert len(found) == 1, (a, b)
    return found[0]


def verdict(res: Resolution, a: str, b: str) -> str:
    return VERDICTS[int(res.verdict[link_index(res, a, b)])]


def shared_kind(res: Resolution, key: str) -> int:
    return int(res.shared_kind[res.graph.index[key]])


# -- random graphs -------------------------------------------------------------------------

DAYS_AGO = (0, 1, 29, 31, 100, 179, 181, 200, 400, 729, 731, 900)


@st.composite
def link_rows(draw: st.DrawFn, pairs: Iterable[tuple[str, str]], recent: bool = False) -> Links:
    """Links between ``pairs`` with random evidence, ages, parties, cuts and forced links
    (``recent``: most seen yesterday, so that most links may merge)."""
    ages = st.sampled_from(DAYS_AGO)
    if recent:
        ages = st.one_of(st.just(1), st.just(1), ages)
    rows = []
    for a, b in pairs:
        first = draw(st.integers(0, 5)) * DAY_MS
        rows.append(
            LinkRow(
                a,
                b,
                count=draw(st.integers(1, 4)),
                first_seen=first,
                last_seen=AS_OF - draw(ages) * DAY_MS,
                mergeable=draw(st.integers(0, 9)) > 0,
                cut=draw(st.integers(0, 14)) == 0,
                forced=draw(st.integers(0, 14)) == 0,
            )
        )
    return rows


def _unordered(pairs: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Distinct unordered pairs without self-loops, in a fixed order (one link per pair)."""
    return sorted({(min(p), max(p)) for p in pairs if p[0] != p[1]})


@st.composite
def random_graphs(draw: st.DrawFn, max_nodes: int = 16) -> tuple[Nodes, Links]:
    """Any graph: random types, some blocked nodes, random links."""
    n = draw(st.integers(1, max_nodes))
    nodes = [
        NodeRow(f"{t}:{i}", t, blocked=draw(st.integers(0, 11)) == 0)
        for i, t in enumerate(draw(st.lists(st.sampled_from(TYPES), min_size=n, max_size=n)))
    ]
    index = st.integers(0, n - 1)
    pairs = _unordered(draw(st.lists(st.tuples(index, index), max_size=2 * n)))
    links = draw(link_rows([(nodes[a].key, nodes[b].key) for a, b in pairs]))
    return nodes, links


PERSON_TYPES = ("cookie", "cookie", "cookie", "email", "email", "phone", "device", "crm_id")


@st.composite
def people_graphs(draw: st.DrawFn, max_people: int = 6) -> tuple[Nodes, Links]:
    """People (a random tree of identifiers each, plus a few extra links), a few shared
    devices or cookies tied to several people, and a few stray links between people."""
    keys: list[str] = []
    pairs: list[tuple[int, int]] = []
    for person in range(draw(st.integers(1, max_people))):
        kinds = draw(st.lists(st.sampled_from(PERSON_TYPES), min_size=1, max_size=6))
        start = len(keys)
        keys.extend(f"{t}:p{person}-{j}" for j, t in enumerate(kinds))
        for j in range(1, len(kinds)):
            pairs.append((start + draw(st.integers(0, j - 1)), start + j))
        mine = st.integers(start, len(keys) - 1)
        pairs.extend(draw(st.lists(st.tuples(mine, mine), max_size=2)))
    for s in range(draw(st.integers(0, 2))):
        kind = draw(st.sampled_from(("cookie", "device", "email", "crm_id")))
        keys.append(f"{kind}:shared-{s}")
        anyone = st.integers(0, len(keys) - 2)
        pairs.extend((len(keys) - 1, k) for k in draw(st.lists(anyone, max_size=10)))
    anyone = st.integers(0, len(keys) - 1)
    pairs.extend(draw(st.lists(st.tuples(anyone, anyone), max_size=6)))
    nodes = [node(k, blocked=draw(st.integers(0, 29)) == 0) for k in keys]
    links = draw(link_rows([(keys[a], keys[b]) for a, b in _unordered(pairs)], recent=True))
    return nodes, links


def _expected_verdict(row: LinkRow, blocked: set[str], ttl_days: dict[str, int | None]) -> int:
    """Rule 1, written independently: the steward's cut, then the party, then blocked ends,
    then the TTL (the shorter of the two ends'); a forced link minds only cuts and blocks."""
    if row.cut:
        return CUT
    if row.forced:
        return BLOCKED if row.a in blocked or row.b in blocked else MERGED
    if not row.mergeable:
        return THIRD_PARTY
    if row.a in blocked or row.b in blocked:
        return BLOCKED
    ttls = [ttl_days[k.split(":", 1)[0]] for k in (row.a, row.b)]
    ttl = min((t for t in ttls if t is not None), default=None)
    if ttl is not None and AS_OF - row.last_seen > ttl * DAY_MS:
        return EXPIRED
    return MERGED


@settings(deadline=None, max_examples=200)
@given(
    graph=random_graphs(),
    ttls=st.lists(st.sampled_from((None, 30, 180, 730)), min_size=len(TYPES), max_size=len(TYPES)),
)
def test_without_limits_or_guards_identities_are_connected_components(
    graph: tuple[Nodes, Links], ttls: list[int | None]
) -> None:
    nodes, links = graph
    ttl_days = dict(zip(TYPES, ttls, strict=True))
    policy = Policy(
        rules={t: TypeRule(limit=None, priority=10, ttl_days=ttl_days[t]) for t in TYPES},
        two_hop=False,
        anchor_types=(),
        max_identity_size=10**9,
    )
    res = resolve(LinkGraph.from_rows(nodes, links), policy, AS_OF)

    blocked = {n.key for n in nodes if n.blocked}
    expected = [_expected_verdict(row, blocked, ttl_days) for row in links]
    oracle = nx.Graph()
    oracle.add_nodes_from(n.key for n in nodes)
    oracle.add_edges_from((r.a, r.b) for r, v in zip(links, expected, strict=True) if v == MERGED)
    assert res.partition() == {frozenset(c) for c in nx.connected_components(oracle)}
    assert res.verdict.tolist() == expected
    assert res.n_groups == len(res.partition())
    assert not res.shared and not res.conflicts and not res.quarantined
    assert (res.shared_kind == NOT_SHARED).all()


def _shuffled(data: st.DataObject, nodes: Nodes, links: Links) -> tuple[LinkGraph, LinkGraph]:
    """The graph as given, and the same graph with nodes, links and link ends shuffled."""
    flips = data.draw(st.lists(st.booleans(), min_size=len(links), max_size=len(links)))
    turned = [replace(r, a=r.b, b=r.a) if flip else r for r, flip in zip(links, flips, strict=True)]
    return (
        LinkGraph.from_rows(nodes, links),
        LinkGraph.from_rows(data.draw(st.permutations(nodes)), data.draw(st.permutations(turned))),
    )


def by_key(res: Resolution) -> dict[str, Any]:
    """Everything a resolution says, named by keys rather than indices."""
    g = res.graph

    def pair(j: int) -> frozenset[str]:
        return frozenset((g.keys[g.a[j]], g.keys[g.b[j]]))

    return {
        "partition": res.partition(),
        "verdicts": {pair(j): VERDICTS[v] for j, v in enumerate(res.verdict.tolist())},
        "kinds": {g.keys[i]: k for i, k in enumerate(res.shared_kind.tolist())},
        "notes": {g.keys[i]: note for i, note in res.shared.items()},
        "conflicts": {pair(j): c for j, c in res.conflicts.items()},
        "quarantined": sorted([g.keys[i] for i in q] for q in res.quarantined),
    }


POLICIES = st.sampled_from([Policy(), replace(Policy(), max_identity_size=5)])


@settings(deadline=None, max_examples=150)
@given(graph=people_graphs(), policy=POLICIES, data=st.data())
def test_resolution_does_not_depend_on_the_order_of_nodes_and_links(
    graph: tuple[Nodes, Links], policy: Policy, data: st.DataObject
) -> None:
    nodes, links = graph
    first, second = _shuffled(data, nodes, links)
    assert by_key(resolve(first, policy, AS_OF)) == by_key(resolve(second, policy, AS_OF))


@settings(deadline=None, max_examples=150)
@given(graph=people_graphs(), policy=POLICIES)
def test_identities_keep_the_limits_and_the_size_bound(
    graph: tuple[Nodes, Links], policy: Policy
) -> None:
    nodes, links = graph
    g = LinkGraph.from_rows(nodes, links)
    res = resolve(g, policy, AS_OF)
    partition = res.partition()
    assert set().union(*partition) == set(g.keys)
    assert sum(len(p) for p in partition) == g.n

    quarantined = {g.keys[i] for q in res.quarantined for i in q}
    for group in partition:
        per_type = Counter(k.split(":", 1)[0] for k in group)
        for type_, count in per_type.items():
            limit = policy.rule(type_).limit
            assert limit is None or count <= limit, (type_, sorted(group))
        assert len(group) <= policy.max_identity_size or group <= quarantined
        if group & quarantined:
            assert len(group) == 1

    for members in res.quarantined:
        assert len(members) > policy.max_identity_size
        assert members == sorted(members, key=g.keys.__getitem__)

    # the groups are exactly the components of the links that merged
    merged = nx.Graph()
    merged.add_nodes_from(g.keys)
    for j, v in enumerate(res.verdict.tolist()):
        a, b = g.keys[g.a[j]], g.keys[g.b[j]]
        if v == MERGED:
            merged.add_edge(a, b)
        elif v == QUARANTINED:
            assert a in quarantined and b in quarantined
        elif v == LIMIT:
            assert res.group_of[g.a[j]] != res.group_of[g.b[j]]
    assert partition == {frozenset(c) for c in nx.connected_components(merged)}

    # shared identifiers merge with nothing but through forced links; every refused link says
    # why
    for j, v in enumerate(res.verdict.tolist()):
        ends = res.shared_kind[g.a[j]], res.shared_kind[g.b[j]]
        if v == MERGED and max(ends) != NOT_SHARED:
            assert g.forced[j]
    for i in range(g.n):
        if res.shared_kind[i] != NOT_SHARED:
            assert i in res.shared
            assert res.shared[i].kind == ("", "direct", "two_hop", "bridge")[res.shared_kind[i]]
    assert set(res.conflicts) == {j for j, v in enumerate(res.verdict.tolist()) if v == LIMIT}
    for conflict in res.conflicts.values():
        assert conflict.limit == policy.rule(conflict.type).limit
        assert all(k.startswith(f"{conflict.type}:") for k in conflict.identifiers)
        assert len(conflict.identifiers) >= min(conflict.limit + 1, 5)


# -- small graphs --------------------------------------------------------------------------


def test_an_empty_graph() -> None:
    res = run([])
    assert res.partition() == set()
    assert res.n_groups == 0
    assert res.groups() == []


def test_isolated_identifiers_are_identities_of_one() -> None:
    res = run([], nodes=[node("email:ann@example.org"), node("cookie:a1")])
    assert res.partition() == singletons(["email:ann@example.org", "cookie:a1"])
    assert res.n_groups == 2


def test_one_person_is_one_identity() -> None:
    res = run(
        [
            link("crm_id:C1", "email:ann@example.org"),
            link("cookie:a1", "email:ann@example.org"),
            link("cookie:a2", "crm_id:C1"),
            link("cookie:a2", "phone:+33612345678"),
        ]
    )
    assert res.partition() == groups(
        ["crm_id:C1", "email:ann@example.org", "cookie:a1", "cookie:a2", "phone:+33612345678"]
    )
    assert (res.verdict == MERGED).all()
    assert not res.shared and not res.conflicts


def test_a_kiosk_cookie_linked_to_12_emails_is_shared() -> None:
    emails = [f"email:visitor{i:02d}@example.org" for i in range(12)]
    own = [f"cookie:own{i:02d}" for i in range(12)]
    links = [link("cookie:kiosk", e) for e in emails]
    links += [link(c, e) for c, e in zip(own, emails, strict=True)]
    res = run(links)
    assert res.partition() == groups(["cookie:kiosk"], *zip(own, emails, strict=True))
    assert shared_kind(res, "cookie:kiosk") == DIRECT
    note = res.shared[res.graph.index["cookie:kiosk"]]
    assert (note.kind, note.type, note.count, note.limit) == ("direct", "email", 12, 5)
    assert note.examples == tuple(emails[:5])
    assert "linked to 12 email identifiers (limit 5)" in note.reason
    assert set(res.shared) == {res.graph.index["cookie:kiosk"]}
    assert {verdict(res, "cookie:kiosk", e) for e in emails} == {"shared"}
    assert {verdict(res, c, e) for c, e in zip(own, emails, strict=True)} == {"merged"}


@pytest.mark.parametrize("tablet", ["cookie:family-tablet", "device:family-tablet"])
def test_a_family_tablet_linked_to_2_crm_ids_is_shared(tablet: str) -> None:
    res = run(
        [
            link(tablet, "crm_id:C1"),
            link(tablet, "crm_id:C2"),
            link("crm_id:C1", "email:ann@example.org"),
            link("crm_id:C2", "email:bob@example.org"),
        ]
    )
    assert res.partition() == groups(
        [tablet], ["crm_id:C1", "email:ann@example.org"], ["crm_id:C2", "email:bob@example.org"]
    )
    note = res.shared[res.graph.index[tablet]]
    assert (note.kind, note.type, note.count, note.limit) == ("direct", "crm_id", 2, 1)
    assert note.examples == ("crm_id:C1", "crm_id:C2")
    assert verdict(res, tablet, "crm_id:C1") == "shared"


def test_an_email_shared_by_two_crm_ids_is_shared() -> None:
    res = run(
        [
            link("email:family@example.org", "crm_id:C1"),
            link("email:family@example.org", "crm_id:C2"),
        ]
    )
    assert res.partition() == singletons(["email:family@example.org", "crm_id:C1", "crm_id:C2"])
    assert shared_kind(res, "email:family@example.org") == DIRECT


@pytest.mark.parametrize("typed", ["email:test@example.com", "email:shop@store.fr"])
def test_an_email_typed_on_40_cookies_of_other_people_is_two_hop_shared(typed: str) -> None:
    cookies = [f"cookie:c{i:02d}" for i in range(40)]
    own = [f"email:person{i:02d}@example.org" for i in range(40)]
    links = [link(typed, c) for c in cookies]
    links += [link(c, e) for c, e in zip(cookies, own, strict=True)]
    res = run(links)
    assert res.partition() == groups([typed], *zip(cookies, own, strict=True))
    assert shared_kind(res, typed) == TWO_HOP
    note = res.shared[res.graph.index[typed]]
    assert (note.kind, note.type, note.count, note.limit) == ("two_hop", "email", 40, 5)
    assert note.examples == tuple(own[:5])
    assert "reaches 40 email identifiers within two links (limit 5)" in note.reason
    assert set(res.shared) == {res.graph.index[typed]}
    assert {verdict(res, typed, c) for c in cookies} == {"shared"}


def test_an_email_that_is_the_only_tie_between_two_people_is_a_bridge() -> None:
    shared = "email:shared@example.org"
    res = run(
        [
            link("email:ann@example.org", "cookie:a1"),
            link("cookie:a1", shared),
            link(shared, "cookie:b1"),
            link("cookie:b1", "email:bob@example.org"),
        ]
    )
    assert res.partition() == groups(
        ["email:ann@example.org", "cookie:a1"], ["email:bob@example.org", "cookie:b1"], [shared]
    )
    assert shared_kind(res, shared) == BRIDGE
    note = res.shared[res.graph.index[shared]]
    assert (note.kind, note.type, note.count, note.limit) == ("bridge", "email", 2, None)
    assert note.examples == ("email:ann@example.org", "email:bob@example.org")
    assert "the only tie between 2 groups" in note.reason
    assert verdict(res, "cookie:a1", shared) == "shared"
    assert verdict(res, "cookie:a1", "email:ann@example.org") == "merged"


@pytest.mark.parametrize(
    "links",
    [
        pytest.param(
            [
                link("email:ann@example.org", "cookie:a1"),
                link("cookie:a1", "email:ann.work@example.org"),
                link("email:ann.work@example.org", "crm_id:C1"),
                link("crm_id:C1", "email:ann@example.org"),
            ],
            id="cycle",
        ),
        pytest.param(
            [
                link("email:ann@example.org", "cookie:a1"),
                link("cookie:a1", "crm_id:C1"),
                link("crm_id:C1", "email:ann.work@example.org"),
            ],
            id="chain",
        ),
    ],
)
def test_a_person_with_two_emails_joined_by_a_cookie_and_a_crm_id_stays_whole(
    links: Links,
) -> None:
    res = run(links)
    assert res.partition() == groups(
        ["email:ann@example.org", "email:ann.work@example.org", "cookie:a1", "crm_id:C1"]
    )
    assert not res.shared


def test_third_party_links_never_merge() -> None:
    res = run(
        [
            link("crm_id:C1", "email:ann@example.org"),
            link("dmp_id:x9", "email:ann@example.org", mergeable=False, count=1000),
            link("dmp_id:x9", "cookie:b1", mergeable=False),
        ]
    )
    assert res.partition() == groups(
        ["crm_id:C1", "email:ann@example.org"], ["dmp_id:x9"], ["cookie:b1"]
    )
    assert verdict(res, "dmp_id:x9", "email:ann@example.org") == "third_party"
    assert verdict(res, "dmp_id:x9", "cookie:b1") == "third_party"


def test_a_cut_link_never_merges() -> None:
    res = run(
        [
            link("crm_id:C1", "email:ann@example.org"),
            link("cookie:a1", "email:ann@example.org", cut=True, count=50),
        ]
    )
    assert res.partition() == groups(["crm_id:C1", "email:ann@example.org"], ["cookie:a1"])
    assert verdict(res, "cookie:a1", "email:ann@example.org") == "cut"


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({"cut": True, "mergeable": False}, CUT),
        ({"cut": True, "last_seen": 0}, CUT),
        ({"mergeable": False, "last_seen": 0}, THIRD_PARTY),
        ({"last_seen": 0}, EXPIRED),
    ],
)
def test_when_several_reasons_apply_the_most_telling_wins(
    flags: dict[str, Any], expected: int
) -> None:
    res = run([link("cookie:a1", "email:ann@example.org", **flags)])
    assert int(res.verdict[0]) == expected


def test_a_blocked_end_wins_over_expiry_and_loses_to_a_third_party() -> None:
    blocked = [node("email:noreply@acme.com", blocked=True)]
    res = run(
        [
            link("cookie:a1", "email:noreply@acme.com", last_seen=0),
            link("cookie:a2", "email:noreply@acme.com", mergeable=False),
        ],
        nodes=blocked,
    )
    assert verdict(res, "cookie:a1", "email:noreply@acme.com") == "blocked"
    assert verdict(res, "cookie:a2", "email:noreply@acme.com") == "third_party"


def test_ttl_a_cookie_link_expires_a_crm_id_email_link_does_not() -> None:
    old = AS_OF - 200 * DAY_MS
    res = run(
        [
            link("cookie:a1", "email:ann@example.org", last_seen=old),
            link("crm_id:C1", "email:ann@example.org", last_seen=old),
            link("device:d1", "email:ann@example.org", last_seen=old),
            link("cookie:a2", "email:ann@example.org", last_seen=AS_OF - 179 * DAY_MS),
        ]
    )
    assert verdict(res, "cookie:a1", "email:ann@example.org") == "expired"
    assert verdict(res, "crm_id:C1", "email:ann@example.org") == "merged"
    assert verdict(res, "device:d1", "email:ann@example.org") == "merged"  # device: 730 days
    assert verdict(res, "cookie:a2", "email:ann@example.org") == "merged"
    assert res.partition() == groups(
        ["cookie:a1"], ["crm_id:C1", "email:ann@example.org", "device:d1", "cookie:a2"]
    )


def test_ttl_a_link_takes_the_shorter_ttl_of_its_ends() -> None:
    res = run([link("cookie:a1", "dmp_id:x1", last_seen=AS_OF - 31 * DAY_MS)])
    assert verdict(res, "cookie:a1", "dmp_id:x1") == "expired"  # dmp_id: 30 days


def test_a_blocked_identifier_merges_with_nothing() -> None:
    test = "email:test@example.com"
    res = run(
        [
            link(test, "cookie:a1"),
            link(test, "cookie:b1"),
            link("cookie:a1", "email:ann@example.org"),
            link("cookie:b1", "email:bob@example.org"),
        ],
        nodes=[node(test, blocked=True)],
    )
    assert res.partition() == groups(
        [test], ["cookie:a1", "email:ann@example.org"], ["cookie:b1", "email:bob@example.org"]
    )
    assert verdict(res, test, "cookie:a1") == "blocked"
    assert verdict(res, test, "cookie:b1") == "blocked"
    assert shared_kind(res, test) == NOT_SHARED


# -- limits --------------------------------------------------------------------------------

PHONES = [f"phone:+3361000000{i}" for i in range(1, 6)]


def test_a_crm_id_with_5_phones_keeps_the_3_most_seen() -> None:
    res = run([link("crm_id:C1", p, count=i) for i, p in enumerate(PHONES, start=1)])
    assert res.partition() == groups(["crm_id:C1", *PHONES[2:]], [PHONES[0]], [PHONES[1]])
    assert not res.shared  # a crm id with too many phones is one customer, not a shared id
    assert verdict(res, "crm_id:C1", PHONES[0]) == "limit"
    assert verdict(res, "crm_id:C1", PHONES[1]) == "limit"
    assert res.conflicts[link_index(res, "crm_id:C1", PHONES[1])] == LimitConflict(
        type="phone", limit=3, identifiers=tuple(sorted(PHONES[1:]))
    )
    assert res.conflicts[link_index(res, "crm_id:C1", PHONES[0])] == LimitConflict(
        type="phone", limit=3, identifiers=(PHONES[0], *PHONES[2:])
    )


def test_a_crm_id_with_5_phones_through_cookies_keeps_the_3_most_seen() -> None:
    links = []
    for i, phone in enumerate(PHONES, start=1):
        links += [link("crm_id:C1", f"cookie:k{i}", count=10), link(f"cookie:k{i}", phone, count=i)]
    res = run(links)
    cookies = [f"cookie:k{i}" for i in range(1, 6)]
    assert res.partition() == groups(["crm_id:C1", *cookies, *PHONES[2:]], [PHONES[0]], [PHONES[1]])
    assert {verdict(res, c, p) for c, p in zip(cookies[:2], PHONES[:2], strict=True)} == {"limit"}
    conflict = res.conflicts[link_index(res, "cookie:k1", PHONES[0])]
    assert conflict == LimitConflict("phone", 3, (PHONES[0], *PHONES[2:]))


def test_a_ring_of_phones_is_split_and_every_refused_link_is_recorded() -> None:
    ring = ["crm_id:C1", *PHONES]
    links = [link(ring[i], ring[(i + 1) % 6], count=10 - i) for i in range(6)]
    res = run(links)
    assert res.partition() == groups(["crm_id:C1", *PHONES[:3]], PHONES[3:])
    assert not res.shared
    assert verdict(res, PHONES[2], PHONES[3]) == "limit"
    assert verdict(res, PHONES[4], "crm_id:C1") == "limit"
    assert res.conflicts[link_index(res, PHONES[2], PHONES[3])] == LimitConflict(
        "phone", 3, tuple(PHONES[:4])
    )
    assert res.conflicts[link_index(res, PHONES[4], "crm_id:C1")] == LimitConflict(
        "phone", 3, tuple(PHONES)
    )


def test_limits_keep_the_higher_priority_link_before_the_more_seen_one() -> None:
    # crm-phone links weigh 60 (the phone's priority), the cookie ones 20 (the cookie's)
    links = [link("crm_id:C1", p) for p in PHONES[:3]]
    links += [link("crm_id:C1", "cookie:k1", count=100), link("cookie:k1", PHONES[3], count=100)]
    res = run(links)
    assert res.partition() == groups(["crm_id:C1", "cookie:k1", *PHONES[:3]], [PHONES[3]])
    assert verdict(res, "cookie:k1", PHONES[3]) == "limit"


# crm_id:C1 - email:a - email:b - crm_id:C2: every link weighs 80 and one must go
_A, _B = "email:a@example.org", "email:b@example.org"


@pytest.mark.parametrize(
    ("evidence", "expected"),
    [
        pytest.param(
            {("crm_id:C1", _A): (3, 0), (_A, _B): (2, 0), (_B, "crm_id:C2"): (1, 0)},
            [["crm_id:C1", _A, _B], ["crm_id:C2"]],
            id="count",
        ),
        pytest.param(
            {("crm_id:C1", _A): (1, 0), (_A, _B): (2, 0), (_B, "crm_id:C2"): (3, 0)},
            [["crm_id:C1"], [_A, _B, "crm_id:C2"]],
            id="count-mirrored",
        ),
        pytest.param(
            {("crm_id:C1", _A): (1, 3), (_A, _B): (1, 2), (_B, "crm_id:C2"): (1, 1)},
            [["crm_id:C1"], [_A, _B, "crm_id:C2"]],
            id="first-seen",
        ),
        pytest.param(
            {("crm_id:C1", _A): (1, 1), (_A, _B): (1, 1), (_B, "crm_id:C2"): (1, 1)},
            [["crm_id:C1", _A], [_B, "crm_id:C2"]],
            id="keys",
        ),
    ],
)
def test_limit_ties_are_broken_by_count_then_first_seen_then_keys(
    evidence: dict[tuple[str, str], tuple[int, int]], expected: list[list[str]]
) -> None:
    links = [
        link(a, b, count=count, first_seen=day * DAY_MS)
        for (a, b), (count, day) in evidence.items()
    ]
    res = run(links)
    assert res.partition() == groups(*expected)
    assert not res.shared
    [refused] = list(res.conflicts.values())
    assert refused == LimitConflict("crm_id", 1, ("crm_id:C1", "crm_id:C2"))
    assert list(res.verdict).count(LIMIT) == 1


def test_a_crm_id_with_6_emails_drops_the_weakest_and_is_not_shared() -> None:
    emails = [f"email:ann{i}@example.org" for i in range(6)]
    res = run([link("crm_id:C1", e, count=10 - i) for i, e in enumerate(emails)])
    assert res.partition() == groups(["crm_id:C1", *emails[:5]], [emails[5]])
    assert not res.shared


# -- circuit breaker -----------------------------------------------------------------------


def test_a_component_above_the_size_bound_is_quarantined() -> None:
    chain = [f"cookie:q{i}" for i in range(8)]
    small = [f"cookie:s{i}" for i in range(5)]
    links = [link(x, y) for x, y in itertools.pairwise(chain)]
    links += [link(x, y) for x, y in itertools.pairwise(small)]
    res = run(links, policy=replace(Policy(), max_identity_size=5))
    assert res.partition() == singletons(chain) | groups(small)
    assert [[res.graph.keys[i] for i in q] for q in res.quarantined] == [sorted(chain)]
    for x, y in itertools.pairwise(chain):
        assert verdict(res, x, y) == "quarantined"
    for x, y in itertools.pairwise(small):
        assert verdict(res, x, y) == "merged"
    assert not res.shared and not res.conflicts


# -- halo ----------------------------------------------------------------------------------


@pytest.mark.parametrize("stored", [DIRECT, TWO_HOP])
def test_halo_identifiers_keep_their_stored_verdict(stored: int) -> None:
    halo = "cookie:kiosk"
    res = run(
        [
            link(halo, "email:ann@example.org"),
            link(halo, "email:bob@example.org"),
            link("cookie:a1", "email:ann@example.org"),
        ],
        nodes=[node(halo, region=False, stored_shared=stored)],
    )
    assert int(res.group_of[res.graph.index[halo]]) == -1
    assert res.partition() == groups(
        ["cookie:a1", "email:ann@example.org"], ["email:bob@example.org"]
    )
    assert shared_kind(res, halo) == stored
    assert verdict(res, halo, "email:ann@example.org") == "shared"


@pytest.mark.parametrize("stored", [DIRECT, TWO_HOP])
def test_halo_identifiers_keep_their_stored_verdict_among_cookies_only(stored: int) -> None:
    halo = "cookie:h1"
    res = run(
        [link(halo, "cookie:a1"), link(halo, "cookie:b1")],
        nodes=[node(halo, region=False, stored_shared=stored)],
    )
    assert res.partition() == singletons(["cookie:a1", "cookie:b1"])
    assert shared_kind(res, halo) == stored
    assert verdict(res, halo, "cookie:a1") == "shared"


def test_halo_identifiers_are_in_no_group() -> None:
    res = run(
        [
            link("email:ann@example.org", "dmp_id:x1", mergeable=False),
            link("email:ann@example.org", "cookie:a1"),
        ],
        nodes=[node("dmp_id:x1", region=False)],
    )
    assert res.group_of.tolist()[res.graph.index["dmp_id:x1"]] == -1
    assert res.partition() == groups(["email:ann@example.org", "cookie:a1"])
    assert res.n_groups == 1
    assert shared_kind(res, "dmp_id:x1") == NOT_SHARED


# -- links forced by a steward -------------------------------------------------------------


def test_a_forced_link_merges_whatever_its_party_and_age() -> None:
    res = run(
        [
            link("crm_id:C1", "dmp_id:x1", mergeable=False, forced=True),
            link("crm_id:C1", "cookie:old", last_seen=0, forced=True),
            link("crm_id:C1", "cookie:other", last_seen=0),
        ]
    )
    assert res.partition() == groups(["crm_id:C1", "dmp_id:x1", "cookie:old"], ["cookie:other"])
    assert verdict(res, "crm_id:C1", "dmp_id:x1") == "merged"
    assert verdict(res, "crm_id:C1", "cookie:old") == "merged"


def test_a_forced_link_loses_to_a_cut_and_to_a_blocked_end() -> None:
    res = run(
        [
            link("crm_id:C1", "cookie:a1", forced=True, cut=True),
            link("crm_id:C1", "email:test@example.com", forced=True, mergeable=False),
        ],
        nodes=[node("email:test@example.com", blocked=True)],
    )
    assert res.partition() == singletons(["crm_id:C1", "cookie:a1", "email:test@example.com"])
    assert verdict(res, "crm_id:C1", "cookie:a1") == "cut"
    assert verdict(res, "crm_id:C1", "email:test@example.com") == "blocked"


def test_a_forced_link_joins_a_shared_identifier_which_merges_nothing_else() -> None:
    kiosk = "cookie:kiosk"
    res = run(
        [link(kiosk, "crm_id:C1", forced=True), link(kiosk, "crm_id:C2"), link(kiosk, "crm_id:C3")]
    )
    assert shared_kind(res, kiosk) == DIRECT
    assert res.partition() == groups([kiosk, "crm_id:C1"], ["crm_id:C2"], ["crm_id:C3"])
    assert verdict(res, kiosk, "crm_id:C1") == "merged"
    assert verdict(res, kiosk, "crm_id:C2") == "shared"


def test_the_shared_rules_see_a_forced_link_as_it_was_observed() -> None:
    # cookie:x was seen with C1 and a steward says it is C2's. Seen with both (first party),
    # it is shared: its link to C1 merges nothing, the forced one still merges
    x = "cookie:x"
    observed = [link(x, "crm_id:C1", count=9), link("cookie:y", "crm_id:C1")]
    res = run([*observed, link(x, "crm_id:C2", forced=True)])
    assert shared_kind(res, x) == DIRECT
    assert res.partition() == groups([x, "crm_id:C2"], ["cookie:y", "crm_id:C1"])
    assert verdict(res, x, "crm_id:C1") == "shared"
    # the forced link being third-party only, x is not shared; the limit split takes the
    # forced link first
    res = run([*observed, link(x, "crm_id:C2", forced=True, mergeable=False)])
    assert shared_kind(res, x) == NOT_SHARED
    assert res.partition() == groups([x, "crm_id:C2"], ["cookie:y", "crm_id:C1"])
    assert verdict(res, x, "crm_id:C1") == "limit"


def test_a_forced_phone_is_kept_and_the_weakest_other_dropped() -> None:
    phones = [link("crm_id:C1", p, count=5) for p in PHONES[:3]]
    res = run([*phones, link("crm_id:C1", PHONES[3], count=1, forced=True)])
    kept = next(p for p in res.partition() if "crm_id:C1" in p)
    assert PHONES[3] in kept and len(kept) == 4
    assert [verdict(res, "crm_id:C1", p) for p in PHONES[:4]].count("limit") == 1


def test_a_forced_link_whose_own_ends_break_a_limit_is_refused() -> None:
    res = run([link("crm_id:C1", "crm_id:C2", forced=True)])
    assert res.partition() == singletons(["crm_id:C1", "crm_id:C2"])
    assert verdict(res, "crm_id:C1", "crm_id:C2") == "limit"


def test_a_forced_link_is_still_subject_to_the_circuit_breaker() -> None:
    cookies = [link("crm_id:C1", f"cookie:c{i}") for i in range(3)]
    res = run(
        [*cookies, link("crm_id:C1", "email:e1", mergeable=False, forced=True)],
        policy=replace(Policy(), max_identity_size=4),
    )
    assert verdict(res, "crm_id:C1", "email:e1") == "quarantined"
    assert len(res.quarantined) == 1


def test_verdict_names() -> None:
    assert [VERDICTS[v] for v in (MERGED, THIRD_PARTY, CUT, EXPIRED)] == [
        "merged",
        "third_party",
        "cut",
        "expired",
    ]
    assert [VERDICTS[v] for v in (BLOCKED, SHARED, QUARANTINED, LIMIT)] == [
        "blocked",
        "shared",
        "quarantined",
        "limit",
    ]
