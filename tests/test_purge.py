"""The retention purge against a real Neo4j, as of fixed times: each kind of expired data goes
and is counted, what is still within its TTL or retention stays, a dry run counts the same and
changes nothing, the identities are recomputed, a second purge finds nothing; the CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from identity.config import Settings
from identity.ingest.service import load_segment_file
from identity.policy import Policy
from identity.privacy.retention import purge
from identity.store.driver import Graph
from identity.store.schema import init_schema
from tests.cli import cli_env, ok
from tests.loading import keys, load_csv, props
from tests.resolving import (
    AS_OF,
    check_invariants,
    identify,
    identity_of,
    recomputed,
    run,
    stored,
)
from tests.services import services

pytestmark = pytest.mark.neo4j

POLICY = Policy(retention_days={"web": 30})
EXPECTED = {
    "dmp_segments": 2,
    "third_party_links": 1,
    "retention_links": 1,
    "traits": 2,
    "third_party_identifiers": 1,
    "retention_identifiers": 2,
}


def _load(graph: Graph, tmp_path: Path, name: str, source: str, *events: dict[str, object]) -> None:
    path = tmp_path / f"{name}.ndjson"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    report = load_segment_file(services(graph, tmp_path, POLICY), path, source=source)
    assert report.counts.rejected == 0, report.counts


@pytest.fixture
def aged(graph: Graph, tmp_path: Path) -> Graph:
    """Web data (30 days' retention) from July and from late October, app data (kept) from
    July, and a DMP feed (third party, dmp_id TTL 30 days) from September and October."""
    init_schema(graph)
    _load(
        graph,
        tmp_path,
        "web",
        "web",
        identify(1, user="U-OLD", cookie="ck-old", first_name="Old", day=200),
        identify(2, user="U-NEW", cookie="ck-new", day=300),
        identify(4, user="U-MIX", first_name="Mixy", day=200),
    )
    _load(
        graph,
        tmp_path,
        "app",
        "app",
        identify(3, user="U-MIX", cookie="ck-mix", city="Paris", day=200),
    )
    data, mapping = tmp_path / "dmp.csv", tmp_path / "dmp.toml"
    data.write_text(
        "cookie,partner,segments,ts\n"
        "ck-new,dmp-stale,travel,2026-09-01T00:00:00Z\n"
        "ck-new,dmp-fresh,autos,2026-10-25T00:00:00Z\n"
    )
    mapping.write_text(
        'source = "dmp"\nparty = "third"\ntimestamp = "ts"\n'
        '[identifiers]\ncookie = "cookie"\npartner = "dmp_id"\n'
        '[segments]\ncolumn = "segments"\nseparator = "|"\nttl_days = 30\n'
    )
    assert load_csv(graph, data, mapping, tmp_path / "rejects").counts.rejected == 0
    run(graph, tmp_path, policy=POLICY)
    return graph


def _census(graph: Graph) -> dict[str, int]:
    return graph.read(
        "census",
        "RETURN COUNT { (:Identifier) } AS identifiers, COUNT { ()-[:LINKED]->() } AS links, "
        "COUNT { ()-[:IN_SEGMENT]->() } AS segments",
    )[0]


def test_purge_drops_what_expired_and_keeps_the_rest(aged: Graph, tmp_path: Path) -> None:
    graph = aged
    before = _census(graph)
    old_identity = identity_of(graph, "crm_id:U-OLD")
    dry = purge(services(graph, tmp_path, POLICY), now=AS_OF, dry_run=True)
    assert dry.counts == EXPECTED
    assert _census(graph) == before and dry.resolve is None

    done = purge(services(graph, tmp_path, POLICY), now=AS_OF)

    # emptied: U-OLD's identity (with ck-old) and the stale DMP id's own
    assert done.counts == EXPECTED and done.emptied_identities == 2
    assert keys(graph) == {
        "crm_id:U-NEW", "cookie:ck-new", "dmp_id:dmp-fresh", "crm_id:U-MIX", "cookie:ck-mix",
    }  # fmt: skip
    assert props(graph, "crm_id:U-MIX", "trait") == {
        "trait.app.city": "Paris",
        "trait_at.app.city": props(graph, "crm_id:U-MIX", "trait_at.app")["trait_at.app.city"],
    }
    segments = graph.read(
        "segments", "MATCH (i)-[:IN_SEGMENT]->(s) RETURN i.key AS key, s.name AS name"
    )
    assert sorted((r["key"], r["name"]) for r in segments) == [
        ("cookie:ck-new", "autos"),
        ("dmp_id:dmp-fresh", "autos"),
    ]
    [purged] = graph.read(
        "purged identity",
        "MATCH (p:Identity {id: $id}) RETURN properties(p) AS p, "
        "COUNT { (p)<-[:AFFECTED]-(:IdentityEvent {kind: 'purged'}) } AS events",
        {"id": old_identity},
    )
    assert purged["p"]["status"] == "purged" and purged["events"] == 1
    assert done.resolve is not None and done.resolve.mode == "incremental"
    assert stored(graph) == recomputed(graph, tmp_path, POLICY)
    check_invariants(graph)
    again = purge(services(graph, tmp_path, POLICY), now=AS_OF)
    assert set(again.counts.values()) == {0} and again.resolve is None


def test_nothing_expires_before_its_time(aged: Graph, tmp_path: Path) -> None:
    early = datetime(2026, 9, 15, tzinfo=UTC)  # the July web data is past 30 days already
    report = purge(services(aged, tmp_path, POLICY), now=early, dry_run=True)
    assert report.counts == {
        "dmp_segments": 0,
        "third_party_links": 0,
        "retention_links": 1,
        "traits": 2,
        "third_party_identifiers": 0,
        "retention_identifiers": 2,
    }
    no_retention = purge(services(aged, tmp_path, Policy()), now=AS_OF, dry_run=True)
    assert no_retention.counts["retention_links"] == no_retention.counts["traits"] == 0


def test_purge_needs_an_aware_time(aged: Graph, tmp_path: Path) -> None:
    from identity.errors import InputError

    with pytest.raises(InputError, match="time zone"):
        purge(services(aged, tmp_path, POLICY), now=datetime(2026, 11, 1), dry_run=True)


def test_purge_cli(aged: Graph, neo4j_settings: Settings, tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text("[sources.web]\nretention_days = 30\n")
    env = cli_env(neo4j_settings, tmp_path, IDGRAPH_POLICY=str(policy))
    text = ok("purge", "--dry-run", "--as-of", "2026-11-01T00:00:00Z", env=env)
    assert "dry run" in text and "retention_identifiers" in text
    assert _census(aged)["identifiers"] == 8
    text = ok("purge", "--as-of", "2026-11-01T00:00:00Z", env=env)
    assert "purged" in text and "emptied identities" in text
    assert _census(aged)["identifiers"] == 5
