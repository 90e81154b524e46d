"""Record matching in the resolution rules: matched links join one customer's records, their
duplicates count once under the limits, and no guard is weakened (docs/matching.md)."""

from __future__ import annotations

from typing import Any

from identity.policy import Policy
from identity.resolve.engine import MERGED, SHARED, VERDICTS
from identity.resolve.graph import LinkRow
from tests.test_engine import groups, link, run


def matched(a: str, b: str, **kw: Any) -> LinkRow:
    """A link written by record matching: never observed (count 0)."""
    return link(a, b, count=0, matched=True, **kw)


def verdict(res: Any, a: str, b: str) -> str:
    g = res.graph
    for j in range(len(g.a)):
        if {g.keys[int(g.a[j])], g.keys[int(g.b[j])]} == {a, b}:
            return VERDICTS[int(res.verdict[j])]
    raise AssertionError(f"no link {a} - {b}")


def test_matched_crm_ids_are_one_customer_under_a_limit_of_one() -> None:
    res = run(
        [
            matched("crm_id:C1", "crm_id:C2"),
            link("crm_id:C1", "email:a@x.com"),
            link("crm_id:C2", "email:a2@x.com"),
            link("cookie:k1", "email:a2@x.com"),
        ]
    )
    assert res.partition() == groups(
        {"crm_id:C1", "crm_id:C2", "email:a@x.com", "email:a2@x.com", "cookie:k1"}
    )
    assert verdict(res, "crm_id:C1", "crm_id:C2") == "merged"


def test_a_third_crm_id_not_matched_is_still_held_apart_by_the_limit() -> None:
    # C1 and C2 are one customer's records; C3 is reached through a cookie, and matching says
    # nothing of it: the crm_id limit (1, counted in clusters of duplicates) keeps it apart
    res = run(
        [
            matched("crm_id:C1", "crm_id:C2"),
            link("crm_id:C1", "email:a@x.com", count=3),
            link("email:a@x.com", "cookie:k1"),
            link("cookie:k1", "phone:+33612345678"),
            link("phone:+33612345678", "crm_id:C3"),
        ]
    )
    assert res.partition() == groups(
        {"crm_id:C1", "crm_id:C2", "email:a@x.com", "cookie:k1"},
        {"crm_id:C3", "phone:+33612345678"},
    )
    assert verdict(res, "cookie:k1", "phone:+33612345678") == "limit"
    # without the matched link the same component splits the same way, C2 on its own
    alone = run([link("crm_id:C1", "email:a@x.com", count=3), link("crm_id:C2", "email:b@x.com")])
    assert frozenset({"crm_id:C2", "email:b@x.com"}) in alone.partition()


def test_duplicates_count_once_and_three_records_of_one_customer_join() -> None:
    res = run(
        [
            matched("crm_id:C1", "crm_id:C2"),
            matched("crm_id:C2", "crm_id:C3"),
            link("crm_id:C3", "phone:+33612345678"),
        ]
    )
    assert res.partition() == groups({"crm_id:C1", "crm_id:C2", "crm_id:C3", "phone:+33612345678"})
    # matched links are not counted by the shared rules: C2 has two crm neighbours, not shared
    assert not res.shared


def test_a_matched_link_never_merges_through_a_shared_end() -> None:
    # records keyed by email; test@example.com is typed by 7 people (shared: limit 5 crm ids
    # would not matter, its 7 cookies each lead to another person's own email)
    links = [link("email:test@example.com", f"cookie:k{i}") for i in range(7)]
    links += [link(f"cookie:k{i}", f"email:p{i}@x.com") for i in range(7)]
    links.append(matched("email:test@example.com", "email:p0@x.com"))
    res = run(links)
    assert "email:test@example.com" in {res.graph.keys[i] for i in res.shared}
    assert verdict(res, "email:test@example.com", "email:p0@x.com") == "shared"
    assert frozenset({"email:test@example.com"}) in res.partition()


def test_a_kiosk_cookie_stays_shared_when_its_customers_are_matched() -> None:
    links = [link("cookie:kiosk", f"email:p{i}@x.com") for i in range(8)]
    links += [link(f"email:p{i}@x.com", f"crm_id:C{i}") for i in range(8)]
    links.append(matched("crm_id:C0", "crm_id:C1"))
    res = run(links)
    assert verdict(res, "cookie:kiosk", "email:p0@x.com") == "shared"
    together = {"crm_id:C0", "crm_id:C1", "email:p0@x.com", "email:p1@x.com"}
    assert frozenset(together) in res.partition()
    assert not any(len(group) > 4 for group in res.partition())


def test_a_matched_link_does_not_carry_a_third_party_link() -> None:
    res = run(
        [
            matched("crm_id:C1", "crm_id:C2"),
            link("crm_id:C2", "dmp_id:D1", mergeable=False),
            link("dmp_id:D1", "crm_id:C3", mergeable=False),
        ]
    )
    assert res.partition() == groups({"crm_id:C1", "crm_id:C2"}, {"dmp_id:D1"}, {"crm_id:C3"})
    assert verdict(res, "crm_id:C2", "dmp_id:D1") == "third_party"


def test_a_cut_matched_link_merges_nothing_and_the_circuit_breaker_holds() -> None:
    res = run([matched("crm_id:C1", "crm_id:C2", cut=True)])
    assert res.partition() == groups({"crm_id:C1"}, {"crm_id:C2"})
    chain = [matched(f"crm_id:C{i}", f"crm_id:C{i + 1}") for i in range(5)]
    res = run(chain, policy=Policy(max_identity_size=4))
    assert len(res.quarantined) == 1
    assert MERGED not in res.verdict.tolist()
    assert SHARED not in res.verdict.tolist()


def test_a_matched_link_also_observed_counts_as_observed() -> None:
    # seen together in a record (count 1) as well as matched: the shared rules count it
    res = run(
        [
            link("crm_id:C1", "crm_id:C2", matched=True),
            link("crm_id:C1", "crm_id:C3", matched=True),
        ]
    )
    assert "crm_id:C1" in {res.graph.keys[i] for i in res.shared}


def test_an_email_of_two_records_of_one_customer_is_not_shared() -> None:
    # one email on both records of a customer entered twice: two crm ids, one customer
    links = [
        matched("crm_id:C1", "crm_id:C2"),
        link("crm_id:C1", "email:a@x.com"),
        link("crm_id:C2", "email:a@x.com"),
        link("email:a@x.com", "cookie:k1"),
    ]
    res = run(links)
    assert not res.shared
    assert res.partition() == groups({"crm_id:C1", "crm_id:C2", "email:a@x.com", "cookie:k1"})
    # without the match the email ties two customers: shared, as before
    alone = run(links[1:])
    assert "email:a@x.com" in {alone.graph.keys[i] for i in alone.shared}


def test_a_cluster_through_the_judged_identifier_does_not_hide_it() -> None:
    # test@example.com is typed on cookies of 6 people who also meet through other cookies;
    # matched to two of them, it must not count their emails once and escape the two-hop rule
    links = [link("email:test@example.com", f"cookie:k{i}") for i in range(6)]
    links += [link(f"cookie:k{i}", f"email:p{i}@x.com") for i in range(6)]
    links += [link(f"cookie:c{i}", f"email:p{i}@x.com") for i in range(5)]
    links += [link(f"cookie:c{i}", f"email:p{i + 1}@x.com") for i in range(5)]
    for n in (0, 1, 2):
        extra = [matched("email:test@example.com", f"email:p{i}@x.com") for i in range(n)]
        res = run(links + extra)
        assert "email:test@example.com" in {res.graph.keys[i] for i in res.shared}, n
        for group in res.partition():
            assert sum(key.startswith("email:") for key in group) <= 5
