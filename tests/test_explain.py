"""``explain``: the evidence path of two identifiers together, the rule that keeps them apart."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from identity.errors import InputError
from identity.policy import Policy
from identity.resolve.explain import explain
from identity.store.driver import Graph
from tests.resolving import AS_OF, identify, load_cookie_sync, load_events, run
from tests.services import services

pytestmark = pytest.mark.neo4j


def _explain(graph: Graph, tmp_path: Path, a: str, b: str, as_of: datetime = AS_OF):  # type: ignore[no-untyped-def]
    return explain(services(graph, tmp_path, Policy()), a, b, as_of=as_of)


def test_same_identity_shows_the_evidence_path(graph: Graph, tmp_path: Path) -> None:
    load_events(
        graph,
        tmp_path,
        "a",
        [
            identify(1, user="C1", email="ann@example.org"),
            identify(2, cookie="ck-2", email="Ann@Example.org "),
            identify(3, cookie="ck-2", email="ann@example.org"),
        ],
    )
    run(graph, tmp_path)
    result = _explain(graph, tmp_path, "crm_id:C1", "cookie:ck-2")
    assert result.same and result.summary == "same identity, joined by 2 link(s)"
    assert result.identity_a == result.identity_b is not None
    assert [(h.a, h.b) for h in result.path] == [
        ("crm_id:C1", "email:ann@example.org"),
        ("email:ann@example.org", "cookie:ck-2"),
    ]
    second = result.path[1]
    assert second.verdict == "merged" and second.sources == ["segment"]
    assert second.party == "first" and second.count == 2
    assert second.first_seen is not None and second.last_seen is not None
    assert len(second.evidence) == 2 and all(":m" in e for e in second.evidence)


def test_identifiers_are_normalized_before_lookup(graph: Graph, tmp_path: Path) -> None:
    load_events(graph, tmp_path, "a", [identify(1, user="C1", email="ann@example.org")])
    run(graph, tmp_path)
    result = _explain(graph, tmp_path, "email: ANN@example.org", "crm_id:C1")
    assert result.same and result.a == "email:ann@example.org"
    with pytest.raises(InputError, match="unknown identifier 'crm_id:C9'"):
        _explain(graph, tmp_path, "crm_id:C9", "crm_id:C1")
    with pytest.raises(InputError, match="expected TYPE:VALUE"):
        _explain(graph, tmp_path, "C1", "crm_id:C1")
    with pytest.raises(InputError, match=r"email:not-an-email.*(valid|@)"):
        _explain(graph, tmp_path, "email:not-an-email", "crm_id:C1")


def test_shared_identifier_names_its_evidence(graph: Graph, tmp_path: Path) -> None:
    load_events(
        graph,
        tmp_path,
        "a",
        [
            identify(1, user="C1", cookie="kiosk"),
            identify(2, user="C2", cookie="kiosk"),
        ],
    )
    run(graph, tmp_path)
    result = _explain(graph, tmp_path, "crm_id:C1", "crm_id:C2")
    assert not result.same
    assert "cookie:kiosk is a shared identifier" in result.summary
    assert "linked to 2 crm_id identifiers (limit 1): crm_id:C1, crm_id:C2" in result.summary


def test_limit_conflict_names_the_conflicting_identifiers(graph: Graph, tmp_path: Path) -> None:
    phones = [identify(i, user="C1", phone=f"06112233{i:02d}") for i in range(4)]
    load_events(graph, tmp_path, "a", phones)
    run(graph, tmp_path)
    result = _explain(graph, tmp_path, "crm_id:C1", "phone:+33611223303")
    assert not result.same
    assert "refused by the phone limit of 3" in result.summary
    assert "phone:+33611223300" in result.summary


def test_third_party_link_enriches_but_does_not_merge(graph: Graph, tmp_path: Path) -> None:
    load_events(graph, tmp_path, "a", [identify(1, user="C1", cookie="ck-1")])
    load_cookie_sync(graph, tmp_path, "ck-1,D1\n")
    run(graph, tmp_path)
    result = _explain(graph, tmp_path, "cookie:ck-1", "dmp_id:D1")
    assert not result.same
    assert "third-party only" in result.summary
    assert result.path[0].party == "third" and result.path[0].sources == ["dmp"]


def test_cut_and_expired_links(graph: Graph, tmp_path: Path) -> None:
    load_events(
        graph,
        tmp_path,
        "a",
        [
            identify(1, user="C1", email="ann@example.org"),
            identify(2, user="C2", cookie="old", day=1),
        ],
    )
    graph.run(
        "cut",
        "MATCH (:Identifier {key: 'crm_id:C1'})-[r:LINKED]-"
        "(:Identifier {key: 'email:ann@example.org'}) SET r.cut = true",
    )
    run(graph, tmp_path)
    cut = _explain(graph, tmp_path, "crm_id:C1", "email:ann@example.org")
    assert not cut.same and "was cut by a steward" in cut.summary
    expired = _explain(graph, tmp_path, "crm_id:C2", "cookie:old")
    assert not expired.same and "expired" in expired.summary
    # the same link a month after it was seen is still within the cookie TTL
    fresh = _explain(graph, tmp_path, "crm_id:C2", "cookie:old", datetime(2026, 2, 1, tzinfo=UTC))
    assert fresh.same


def test_no_link_at_all(graph: Graph, tmp_path: Path) -> None:
    load_events(
        graph,
        tmp_path,
        "a",
        [identify(1, user="C1", cookie="a"), identify(2, user="C2", cookie="b")],
    )
    run(graph, tmp_path)
    result = _explain(graph, tmp_path, "crm_id:C1", "crm_id:C2")
    assert not result.same and "no link at all" in result.summary and result.path == []
