"""Erasure and access against a real Neo4j: nothing of a forgotten person remains (proved by
scanning every property in the database), tombstones hold only hashes, neighbours are
re-resolved, the same identifiers arriving again are refused and counted, and the export
holds everything about a person."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from identity.config import Settings
from identity.errors import ConflictError, InputError, NotFoundError
from identity.policy import Policy
from identity.privacy.access import export_profile
from identity.privacy.forget import ForgetResult, forget_profile, scrub
from identity.steward import actions as steward
from identity.store import privacy as privacy_store
from identity.store.driver import Graph
from identity.store.schema import init_schema
from tests.cli import cli_env, idgraph, ok
from tests.loading import keys, load_csv, load_segment
from tests.resolving import (
    check_invariants,
    identify,
    identity_of,
    load_events,
    recomputed,
    run,
    stored,
)
from tests.services import services

pytestmark = pytest.mark.neo4j

ANN_KEYS = [
    "crm_id:CRM-ANN-4417",
    "cookie:ck-ann-7f3e",
    "cookie:ck-ann-2b9d",
    "email:annabelle.forget@example.org",
]
# every value of Ann's identifiers, and a trait value only she had
ANN_VALUES = [k.split(":", 1)[1] for k in ANN_KEYS] + ["Annabelle"]


def _track(n: int, cookie: str, event: str) -> dict[str, Any]:
    return {
        "type": "track",
        "messageId": f"t{n}",
        "timestamp": "2026-10-04T10:00:00Z",
        "anonymousId": cookie,
        "event": event,
    }


def _dmp(graph: Graph, tmp_path: Path) -> None:
    data, mapping = tmp_path / "dmp.csv", tmp_path / "dmp.toml"
    data.write_text(
        "cookie,partner,segments,ts\n"
        "ck-ann-7f3e,dmp-5521,travel|sports,2026-10-20T00:00:00Z\n"
        "ck-bob-9,dmp-bob-1,autos,2026-10-20T00:00:00Z\n"
    )
    mapping.write_text(
        'source = "dmp"\nparty = "third"\ntimestamp = "ts"\n'
        '[identifiers]\ncookie = "cookie"\npartner = "dmp_id"\n'
        '[segments]\ncolumn = "segments"\nseparator = "|"\nttl_days = 30\n'
    )
    report = load_csv(graph, data, mapping, tmp_path / "rejects")
    assert report.counts.rejected == 0, report.counts


@pytest.fixture
def world(graph: Graph, tmp_path: Path) -> dict[str, str]:
    """Ann: two identities merged into one (crm, two cookies, an email; DMP segments and a
    DMP id synced with a cookie), a forced link, a segment and an audience export; Bob; a
    kiosk cookie Ann and Bob both used (shared while two crm ids reach it)."""
    init_schema(graph)
    load_events(
        graph,
        tmp_path,
        "a1",
        [
            identify(1, user="CRM-ANN-4417", cookie="ck-ann-7f3e", first_name="Annabelle"),
            _track(2, "ck-ann-7f3e", "Order Completed"),
        ],
    )
    run(graph, tmp_path)
    load_events(
        graph,
        tmp_path,
        "a2",
        [identify(3, cookie="ck-ann-2b9d", email="annabelle.forget@example.org", day=276)],
    )
    run(graph, tmp_path)
    loser = identity_of(graph, "cookie:ck-ann-2b9d")
    load_events(
        graph,
        tmp_path,
        "a3",
        [
            identify(4, user="CRM-ANN-4417", cookie="ck-ann-2b9d", day=278),
            identify(5, user="CRM-BOB-2210", cookie="ck-bob-9", first_name="Robert"),
            identify(6, user="CRM-BOB-2210", cookie="ck-kiosk"),
            identify(7, user="CRM-ANN-4417", cookie="ck-kiosk"),
        ],
    )
    _dmp(graph, tmp_path)
    run(graph, tmp_path)
    ann = identity_of(graph, "crm_id:CRM-ANN-4417")
    assert ann != loser and identity_of(graph, "email:annabelle.forget@example.org") == ann
    bob = identity_of(graph, "crm_id:CRM-BOB-2210")
    assert identity_of(graph, "cookie:ck-kiosk") not in (ann, bob)
    steward.force_merge(
        services(graph, tmp_path, Policy(), actor="steward:alice"),
        "cookie:ck-ann-2b9d",
        "crm_id:CRM-ANN-4417",
        reason="same person, ticket 9",
    )
    graph.run(
        "segment and audience",
        """
        MATCH (p:Identity {id: $ann}), (i:Identifier {key: 'email:annabelle.forget@example.org'})
        CREATE (s:Segment {id: 'seg-1', name: 'buyers'})-[:INCLUDES {since: datetime()}]->(p),
               (s)-[:LEFT {at: datetime()}]->(p),
               (:Audience {id: 'aud-1', segment: 'seg-1'})-[:EXPORTED {run: 'r1'}]->(i)
        SET p['trait.first_name'] = 'Annabelle', p['consent.marketing'] = true,
            p['count.cookie'] = 3, p['trait_from.first_name'] = 'crm_id:CRM-ANN-4417',
            p.first_seen = datetime()
        """,
        {"ann": ann},
    )
    kiosk = identity_of(graph, "cookie:ck-kiosk")
    return {"ann": ann, "loser": loser, "bob": bob, "kiosk": kiosk}


def _forget(graph: Graph, tmp_path: Path, **kw: Any) -> ForgetResult:
    kw.setdefault("reason", "GDPR request 77 from annabelle.forget@example.org")
    actor = kw.pop("actor", "admin:dpo")
    return forget_profile(services(graph, tmp_path, Policy(), actor=actor), **kw)


_SCAN = """
CALL () {
  MATCH (n) UNWIND keys(n) AS k RETURN labels(n) AS where, k, n[k] AS v
  UNION ALL
  MATCH ()-[r]->() UNWIND keys(r) AS k RETURN [type(r)] AS where, k, r[k] AS v
}
WITH where, k, CASE WHEN v IS :: LIST<ANY> THEN reduce(s = '', x IN v | s + '|' + toString(x))
                    ELSE toString(v) END AS text
WHERE any(needle IN $needles WHERE text CONTAINS needle OR k CONTAINS needle)
RETURN where, k, text
"""


def test_nothing_of_the_forgotten_person_remains(
    graph: Graph, tmp_path: Path, world: dict[str, str]
) -> None:
    needles = ANN_KEYS + ANN_VALUES
    assert graph.read("scan before", _SCAN, {"needles": needles})  # the scan finds her
    shared = graph.read(
        "shared", "MATCH (i:Identifier {key: 'cookie:ck-kiosk'}) RETURN i.shared_reason AS r"
    )
    assert "crm_id:CRM-ANN-4417" in shared[0]["r"]  # named by a shared verdict

    done = _forget(graph, tmp_path, id=world["loser"])  # a merged id: its survivor goes

    assert done.identity == world["ann"] and done.identifiers == len(ANN_KEYS)
    assert done.merged_ids == 1 and done.links >= 5 and done.report is not None
    left = graph.read("scan after", _SCAN, {"needles": needles})
    assert left == [], left
    tombstones = graph.read("tombstones", "MATCH (t:Tombstone) RETURN properties(t) AS p")
    assert sorted(t["p"]["hash"] for t in tombstones) == sorted(
        hashlib.sha256(k.encode()).hexdigest() for k in ANN_KEYS
    )
    assert all(set(t["p"]) == {"hash", "at"} for t in tombstones)
    [ann] = graph.read(
        "forgotten", "MATCH (p:Identity {id: $id}) RETURN properties(p) AS p", {"id": done.identity}
    )
    assert set(ann["p"]) == {"id", "status", "created_at", "updated_at", "size"}
    assert ann["p"]["status"] == "forgotten" and ann["p"]["size"] == 0
    gone = graph.read(
        "what is gone",
        """
        RETURN COUNT { (:Identity {id: $loser}) } AS loser,
               COUNT { (:Segment)-[:INCLUDES]->(:Identity {id: $ann}) } AS segments,
               [(:Segment)-[l:LEFT]->(:Identity {id: $ann}) | keys(l)] AS left,
               COUNT { ()-[:EXPORTED]->() } AS exports,
               COUNT { (:Identity {id: $ann})<-[:MEMBER_OF]-() } AS members
        """,
        {"loser": world["loser"], "ann": world["ann"]},
    )[0]
    # the membership ended as "left" (time only), so that downstream copies remove the person
    assert gone == {"loser": 0, "segments": 0, "left": [["at"]], "exports": 0, "members": 0}
    [event] = graph.read(
        "event",
        "MATCH (e:IdentityEvent {kind: 'forgotten'})-[:AFFECTED]->(p:Identity {id: $id}) "
        "RETURN properties(e) AS e",
        {"id": done.identity},
    )
    assert event["e"]["identifiers"] == len(ANN_KEYS) and event["e"]["actor"] == "admin:dpo"
    assert event["e"]["reason"] == "GDPR request 77 from [erased]"
    assert "keys" not in event["e"]
    steward_keys = graph.read(
        "steward", "MATCH (e:IdentityEvent {kind: 'steward'}) RETURN e.keys AS k"
    )
    assert steward_keys == [{"k": []}]
    # the kiosk cookie lost Ann's link: re-resolved, no longer shared, it joins Bob (whose
    # identity and the kiosk's were created in the same run: either id may survive)
    assert identity_of(graph, "cookie:ck-kiosk") == identity_of(graph, "crm_id:CRM-BOB-2210")
    assert identity_of(graph, "cookie:ck-kiosk") in (world["bob"], world["kiosk"])
    assert stored(graph) == recomputed(graph, tmp_path, as_of=done.report.as_of)
    check_invariants(graph)
    # the DMP id synced with her cookie was an identity of its own (third-party links never
    # merge): it stays, without the link
    assert keys(graph) == {"crm_id:CRM-BOB-2210", "cookie:ck-bob-9", "cookie:ck-kiosk",
                           "dmp_id:dmp-bob-1", "dmp_id:dmp-5521"}  # fmt: skip


def test_forgotten_identifiers_are_refused_when_they_come_again(
    graph: Graph, tmp_path: Path, world: dict[str, str]
) -> None:
    _forget(graph, tmp_path, identifier="email: Annabelle.Forget@Example.org ")
    again = tmp_path / "again.ndjson"
    again.write_text(
        "".join(
            json.dumps(e) + "\n"
            for e in [
                identify(20, user="CRM-ANN-4417", cookie="ck-ann-7f3e", first_name="Annabelle"),
                identify(21, user="CRM-ANN-4417", cookie="ck-new-1", first_name="Annabelle"),
                identify(22, cookie="ck-new-2", email="annabelle.forget@example.org", city="Lyon"),
                identify(23, user="CRM-NEW-1"),
            ]
        )
    )
    report = load_segment(graph, again, tmp_path / "rejects")
    c = report.counts
    assert (c.read, c.accepted, c.rejected) == (4, 3, 1)
    assert c.read == c.accepted + c.rejected
    assert dict(c.reasons) == {"forgotten": 1}
    assert dict(c.value_reasons) == {"forgotten": 4}
    present = keys(graph)
    assert not present & set(ANN_KEYS)
    assert {"cookie:ck-new-1", "cookie:ck-new-2", "crm_id:CRM-NEW-1"} <= present
    # the primary (the crm id) was erased: the record's traits went with it
    traits = graph.read(
        "traits",
        "MATCH (i:Identifier {key: $k}) RETURN [x IN keys(i) WHERE x STARTS WITH 'trait.'] AS t",
        {"k": "cookie:ck-new-1"},
    )
    assert traits == [{"t": []}]
    assert graph.read("link", "MATCH ()-[r:LINKED]->() WHERE r.evidence[0] CONTAINS ':m22' "
                      "RETURN r") == []  # fmt: skip
    assert report.rejects_file is not None
    rejects = report.rejects_file.read_text()
    assert rejects.count('"forgotten"') == 5
    assert not any(v in rejects for v in ANN_VALUES)


def test_a_big_identity_is_erased_in_batches(
    graph: Graph, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    init_schema(graph)
    events = [identify(n, user="CRM-BIG-1", cookie=f"ck-big-{n}") for n in range(7)]
    load_events(graph, tmp_path, "big", [*events, identify(9, user="CRM-OTHER", cookie="ck-x")])
    run(graph, tmp_path)
    monkeypatch.setattr(privacy_store, "ERASE_CHUNK", 3)
    done = _forget(graph, tmp_path, identifier="crm_id:CRM-BIG-1")
    assert done.identifiers == 8 and done.links == 7
    assert keys(graph) == {"crm_id:CRM-OTHER", "cookie:ck-x"}
    assert graph.read("n", "MATCH (t:Tombstone) RETURN count(t) AS n") == [{"n": 8}]
    check_invariants(graph)


def test_errors_say_what_is_wrong(graph: Graph, tmp_path: Path, world: dict[str, str]) -> None:
    with pytest.raises(InputError, match="exactly one"):
        _forget(graph, tmp_path)
    with pytest.raises(InputError, match="exactly one"):
        _forget(graph, tmp_path, id=world["ann"], identifier="crm_id:CRM-ANN-4417")
    with pytest.raises(InputError, match="non-empty reason"):
        _forget(graph, tmp_path, id=world["ann"], reason="  ")
    with pytest.raises(InputError, match="TYPE:VALUE"):
        _forget(graph, tmp_path, identifier="CRM-ANN-4417")
    with pytest.raises(NotFoundError, match="no identity 'nope'"):
        _forget(graph, tmp_path, id="nope")
    _forget(graph, tmp_path, id=world["ann"])
    with pytest.raises(ConflictError, match="forgotten already"):
        _forget(graph, tmp_path, id=world["ann"])
    with pytest.raises(NotFoundError, match="was erased on 20"):
        _forget(graph, tmp_path, identifier="cookie:ck-ann-7f3e")
    with pytest.raises(NotFoundError, match="was erased on"):
        export_profile(services(graph, tmp_path, Policy()), identifier="cookie:ck-ann-7f3e")


def test_export_holds_everything_about_the_person(
    graph: Graph, tmp_path: Path, world: dict[str, str]
) -> None:
    doc = export_profile(services(graph, tmp_path, Policy()), id=world["loser"])
    json.dumps(doc)  # one JSON document
    assert doc["identity"]["id"] == world["ann"] and doc["identity"]["status"] == "active"
    assert doc["identity"]["merged_ids"] == [world["loser"]]
    assert doc["profile"]["trait.first_name"] == "Annabelle"
    by_key = {i["key"]: i for i in doc["identifiers"]}
    assert sorted(by_key) == sorted(ANN_KEYS)
    crm = by_key["crm_id:CRM-ANN-4417"]
    assert crm["traits"]["segment"]["first_name"]["value"] == "Annabelle"
    assert crm["traits"]["segment"]["first_name"]["at"].startswith("2026-10-01T10:00:00")
    cookie = by_key["cookie:ck-ann-7f3e"]
    assert cookie["events"]["Order Completed"]["count"] == 1
    assert [s["name"] for s in cookie["dmp_segments"]] == ["sports", "travel"]
    assert cookie["dmp_segments"][0]["expires_at"].startswith("2026-11-19")
    link = next(x for x in cookie["links"] if x["other"] == "dmp_id:dmp-5521")
    assert link["party"] == "third" and link["sources"] == ["dmp"] and link["evidence"]
    assert by_key["email:annabelle.forget@example.org"]["audiences"] == [
        {"audience": "aud-1", "segment": "seg-1", "run": "r1"}
    ]
    assert [s["name"] for s in doc["segments"]] == ["buyers"]
    kinds = [h["kind"] for h in doc["history"]]
    assert {"created", "merged", "steward"} <= set(kinds)
    assert {b["source"] for b in doc["batches"]} >= {"segment", "dmp"}
    assert all(b["id"] and b["started_at"] for b in doc["batches"])


def test_scrub_replaces_whole_keys_only() -> None:
    text = "linked by cookie:ab - cookie:abc; shared (limit 1): cookie:ab, email:x@y.z)"
    assert scrub(text, ["cookie:ab", "email:x@y.z"]) == (
        "linked by [erased] - cookie:abc; shared (limit 1): [erased], [erased])"
    )
    assert scrub("nothing", []) == "nothing"


def test_forget_and_export_cli(
    graph: Graph, tmp_path: Path, world: dict[str, str], neo4j_settings: Settings
) -> None:
    env = cli_env(neo4j_settings, tmp_path)
    out = tmp_path / "ann.json"
    text = ok("export-profile", "email:annabelle.forget@example.org", "--out", str(out), env=env)
    assert "4 identifiers" in text
    assert json.loads(out.read_text())["identity"]["id"] == world["ann"]
    printed = json.loads(ok("export-profile", "--id", world["bob"], env=env))
    assert printed["identity"]["id"] == world["bob"]
    text = ok("forget", "--id", world["loser"], "--reason", "GDPR request 78", env=env)
    assert f"forgot identity {world['ann']}: 4 identifiers" in text
    assert "recomputed by incremental resolve" in text
    refused = idgraph("forget", "cookie:ck-ann-7f3e", "--reason", "again", env=env)
    assert refused.returncode == 1 and "was erased on" in refused.stderr
    missing = idgraph("forget", "--id", world["bob"], env=env)
    assert missing.returncode != 0 and "--reason" in missing.stderr


def test_quarantine_samples_lose_the_erased_keys(graph: Graph, tmp_path: Path) -> None:
    init_schema(graph)
    policy = Policy(max_identity_size=3)
    load_events(
        graph,
        tmp_path,
        "big",
        [identify(n, user="CRM-Q-1", cookie=f"ck-q-{n}") for n in range(5)],
    )
    run(graph, tmp_path, policy=policy)
    [before] = graph.read("sample", "MATCH (q:Quarantine) RETURN q.sample AS s")
    assert "crm_id:CRM-Q-1" in before["s"]
    forget_profile(
        services(graph, tmp_path, policy, actor="admin:dpo"),
        identifier="crm_id:CRM-Q-1",
        reason="GDPR request 79",
    )
    [after] = graph.read("sample", "MATCH (q:Quarantine) RETURN q.sample AS s")
    assert after["s"] == [k for k in before["s"] if k != "crm_id:CRM-Q-1"]
