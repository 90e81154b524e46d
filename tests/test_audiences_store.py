"""Audience exports against the real database: consent, blocks, hashing, formats, deltas,
paging, the export record, errors and the CLI. Segment memberships are written directly with
Cypher (a refreshed Segment INCLUDES its member identities)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from identity.audiences.export import (
    ExportReport,
    export_audience,
    export_request,
    export_to_directory,
)
from identity.audiences.hashing import hashed_for
from identity.config import Settings
from identity.errors import ConflictError, InputError, NotFoundError
from identity.normalize import sha256_hex
from identity.policy import Policy
from identity.segments import service as segments
from identity.store import audiences as store
from identity.store.driver import Graph
from identity.store.schema import init_schema
from tests.cli import idgraph, server_env
from tests.marketing import leave, person, segment
from tests.resolving import identify, load_events, run
from tests.services import services

pytestmark = pytest.mark.neo4j
POLICY = Policy()


def export(
    graph: Graph, types: list[str], **options: Any
) -> tuple[ExportReport, list[dict[str, str]]]:
    """Run an export to memory; the report and the CSV rows (dicts)."""
    page_size = options.pop("page_size", 5000)
    progress = options.pop("progress", None)
    request = export_request(POLICY, options.pop("segment", "seg-1"), types, **options)
    out = io.StringIO()
    report = export_audience(
        services(graph, policy=POLICY), request, out, page_size=page_size, progress=progress
    )
    if request.format == "ndjson":
        rows = [json.loads(line) for line in out.getvalue().splitlines()]
    else:
        rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert report.rows == len(rows)
    return report, rows


@pytest.fixture
def world(graph: Graph) -> Graph:
    """Ann consents to marketing and ads; Bob to marketing only (false for ads); Cid gave
    nothing; Dee withdrew marketing (false); Eve is not in the segment; a merged identity is
    still linked from the segment but not active."""
    init_schema(graph)
    segment(graph)
    ann = {"marketing": True, "ads": True}
    person(
        graph,
        "p-ann",
        [("email", "ann@example.org"), ("phone", "+33612345678"), ("cookie", "ck-a")],
        consent=ann,
    )
    person(
        graph,
        "p-bob",
        [("email", "bob@example.org"), ("cookie", "ck-b")],
        consent={"marketing": True, "ads": False},
    )
    person(graph, "p-cid", [("email", "cid@example.org"), ("cookie", "ck-c")])
    person(graph, "p-dee", [("email", "dee@example.org")], consent={"marketing": False})
    person(graph, "p-eve", [("email", "eve@example.org")], consent=ann, segment=None)
    person(graph, "p-old", [("email", "old@example.org")], consent=ann, status="merged")
    return graph


def pairs(rows: list[dict[str, str]]) -> set[tuple[str, ...]]:
    return {tuple(r.values()) for r in rows}


def test_full_export_keeps_only_consented_identifiers_and_counts_the_rest(world: Graph) -> None:
    report, rows = export(world, ["email", "phone", "cookie"])
    assert list(rows[0]) == ["identity_id", "type", "value"]
    assert pairs(rows) == {
        ("p-ann", "email", "ann@example.org"),
        ("p-ann", "phone", "+33612345678"),
        ("p-ann", "cookie", "ck-a"),
        ("p-bob", "email", "bob@example.org"),
    }
    # bob's cookie needs ads (false), cid gave nothing, dee withdrew marketing
    assert report.skipped_consent == {"email": 2, "cookie": 2}
    assert report.members == 4 and report.identifiers == 8
    assert report.eligible == report.rows == report.adds == 4 and report.removes == 0
    assert report.identifiers == (
        report.eligible
        + report.skipped_consent_total
        + report.skipped_blocked
        + report.skipped_hashed
    )
    [recorded] = store.exports(world, report.audience, 10)
    assert recorded["status"] == "completed" and recorded["rows"] == 4
    assert recorded["skipped_consent"] == 4
    assert recorded["skipped_consent_by_type"] == {"email": 2, "cookie": 2}


def test_only_the_asked_types_and_blocked_identifiers_left_out(world: Graph) -> None:
    person(
        world, "p-ann", [("email", "ann.work@example.org")], blocked=("email:ann.work@example.org",)
    )
    report, rows = export(world, ["cookie"])
    assert pairs(rows) == {("p-ann", "cookie", "ck-a")}
    report, rows = export(world, ["email"])
    assert {r["value"] for r in rows} == {"ann@example.org", "bob@example.org"}
    assert report.skipped_blocked == 1 and report.skipped_consent == {"email": 2}


def test_hashed_for_google_and_meta(world: Graph) -> None:
    google, rows = export(world, ["email", "phone", "cookie"], hashed=True, destination="google")
    values = {(r["type"], r["value"]) for r in rows}
    assert ("email", sha256_hex("ann@example.org")) in values
    assert ("phone", sha256_hex("+33612345678")) in values
    assert ("cookie", "ck-a") in values  # cookies go plain
    meta, rows = export(world, ["email", "phone"], hashed=True, destination="meta")
    values = {(r["type"], r["value"]) for r in rows}
    assert ("phone", sha256_hex("33612345678")) in values
    assert ("phone", hashed_for("meta", "phone", "+33612345678")) in values
    assert ("email", sha256_hex("bob@example.org")) in values
    assert google.audience != meta.audience


def test_identifiers_stored_hashed(graph: Graph) -> None:
    init_schema(graph)
    segment(graph)
    email, phone = sha256_hex("ann@example.org"), sha256_hex("+33612345678")
    person(
        graph,
        "p-ann",
        [("email", email), ("phone", phone)],
        consent={"marketing": True},
        hashed=(f"email:{email}", f"phone:{phone}"),
    )
    # Google's form is the stored form: both go as they are
    report, rows = export(graph, ["email", "phone"], hashed=True, destination="google")
    assert {r["value"] for r in rows} == {email, phone} and report.skipped_hashed == 0
    # Meta hashes phones without '+': a stored hash cannot be redone
    report, rows = export(graph, ["email", "phone"], hashed=True, destination="meta")
    assert {r["value"] for r in rows} == {email} and report.skipped_hashed == 1
    # a plain export cannot un-hash
    report, rows = export(graph, ["email", "phone"])
    assert rows == [] and report.skipped_hashed == 2 and report.identifiers == 2


def test_ndjson(world: Graph) -> None:
    _, rows = export(world, ["email"], format="ndjson", delta=True)
    assert sorted(rows, key=lambda r: r["value"]) == [
        {"identity_id": "p-ann", "type": "email", "value": "ann@example.org", "op": "add"},
        {"identity_id": "p-bob", "type": "email", "value": "bob@example.org", "op": "add"},
    ]
    _, rows = export(world, ["email"], format="ndjson")
    assert all(set(r) == {"identity_id", "type", "value"} for r in rows) and len(rows) == 2


def test_deltas_add_remove_and_do_not_repeat(world: Graph) -> None:
    _, rows = export(world, ["email", "cookie"], delta=True)
    assert list(rows[0]) == ["identity_id", "type", "value", "op"]
    assert {(r["value"], r["op"]) for r in rows} == {
        ("ann@example.org", "add"),
        ("ck-a", "add"),
        ("bob@example.org", "add"),
    }
    again, rows = export(world, ["email", "cookie"], delta=True)
    assert rows == [] and again.adds == again.removes == 0 and again.eligible == 3
    # bob leaves the segment, ann withdraws ads consent, cid consents to marketing
    leave(world, "seg-1", "p-bob")
    person(world, "p-ann", [], consent={"ads": False})
    person(world, "p-cid", [], consent={"marketing": True})
    delta, rows = export(world, ["email", "cookie"], delta=True)
    assert pairs(rows) == {
        ("p-bob", "email", "bob@example.org", "remove"),
        ("p-ann", "cookie", "ck-a", "remove"),
        ("p-cid", "email", "cid@example.org", "add"),
    }
    assert (delta.adds, delta.removes, delta.rows) == (1, 2, 3)
    # a full export writes everything, and the state it leaves gives an empty delta next
    full, rows = export(world, ["email", "cookie"])
    assert {r["value"] for r in rows} == {"ann@example.org", "cid@example.org"}
    assert full.adds == full.removes == 0
    assert export(world, ["email", "cookie"], delta=True)[1] == []
    # a different audience (hashed) has its own state: everything is an add there
    hashed, rows = export(world, ["email", "cookie"], delta=True, hashed=True, destination="meta")
    assert hashed.adds == 2 and {r["op"] for r in rows} == {"add"}


def test_removal_after_a_full_export_and_forgotten_identifiers_vanish(world: Graph) -> None:
    export(world, ["email"])
    world.run("forget bob", "MATCH (i:Identifier {key: 'email:bob@example.org'}) DETACH DELETE i")
    leave(world, "seg-1", "p-ann")
    delta, rows = export(world, ["email"], delta=True)
    assert pairs(rows) == {("p-ann", "email", "ann@example.org", "remove")}
    assert delta.removes == 1
    [audience] = store.audiences(world, "seg-1")
    assert audience["exported"] == 0


def test_paging_many_identities_with_a_small_page(graph: Graph) -> None:
    init_schema(graph)
    segment(graph)
    graph.run(
        "many",
        """
        MATCH (s:Segment {id: 'seg-1'})
        UNWIND range(0, 56) AS n
        CREATE (p:Identity {id: 'p-' + right('000' + toString(n), 3), status: 'active',
                            `consent.marketing`: n % 3 <> 0})
        CREATE (:Identifier {key: 'email:u' + n + '@example.org', type: 'email',
                             value: 'u' + n + '@example.org'})-[:MEMBER_OF]->(p)
        CREATE (:Identifier {key: 'crm_id:C' + n, type: 'crm_id', value: 'C' + n})
               -[:MEMBER_OF]->(p)
        CREATE (s)-[:INCLUDES]->(p)
        """,
    )
    graph.run(
        "others",
        "UNWIND range(0, 99) AS n CREATE (:Identity {id: 'p-0' + n + 'x', status: 'active', "
        "`consent.marketing`: true})",
    )
    # one big page reads from the segment, small pages along the identity id index: same rows
    everything = export(graph, ["email", "crm_id"], page_size=1000)[1]
    seen: list[tuple[int, int]] = []
    report, rows = export(
        graph, ["email", "crm_id"], page_size=5, progress=lambda d, t: seen.append((d, t))
    )
    assert report.members == 57 and report.identifiers == 114
    assert report.eligible == 2 * 38 and report.skipped_consent == {"email": 19, "crm_id": 19}
    assert seen[-1] == (57, 57) and len(seen) == 12  # 11 full pages of 5, then 2
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    ids = [r["identity_id"] for r in rows]
    assert ids == sorted(ids) and len(set(ids)) == 38
    assert pairs(rows) == pairs(everything)
    leave(graph, "seg-1", "p-001")
    delta, rows = export(graph, ["email", "crm_id"], page_size=5, delta=True)
    assert delta.removes == 2 and {r["op"] for r in rows} == {"remove"} and len(rows) == 2


def test_errors(world: Graph) -> None:
    with pytest.raises(NotFoundError, match="no segment 'nope'"):
        export(world, ["email"], segment="nope")
    segment(world, "seg-new", refreshed=False)
    with pytest.raises(InputError, match="never been refreshed: refresh it first"):
        export(world, ["email"], segment="seg-new")
    with pytest.raises(InputError, match="unknown identifier type 'fax'"):
        export(world, ["fax"])


class _Broken(io.StringIO):
    def write(self, text: str) -> int:
        if "bob" in text:
            raise OSError("disk full")
        return super().write(text)


def test_a_failed_export_is_recorded_and_a_delta_then_refused(world: Graph) -> None:
    request = export_request(POLICY, "seg-1", ["email"], delta=True)
    with pytest.raises(OSError, match="disk full"):
        export_audience(services(world, policy=POLICY), request, _Broken())
    [failed] = store.exports(world, request.audience, 1)
    assert failed["status"] == "failed"
    with pytest.raises(InputError, match="did not complete: run a full export"):
        export(world, ["email"], delta=True)
    _, rows = export(world, ["email"])
    assert len(rows) == 2
    assert export(world, ["email"], delta=True)[1] == []


def test_one_export_of_an_audience_at_a_time(world: Graph) -> None:
    audience = export_request(POLICY, "seg-1", ["email"]).audience
    export(world, ["email"])
    hold = (
        "MATCH (a:Audience {id: $a}) SET a.running = 'exp-other', "
        "a.running_since = datetime() - duration({hours: $hours})"
    )
    world.run("hold", hold, {"a": audience, "hours": 1})
    with pytest.raises(ConflictError, match=r"export exp-other of audience .* is running"):
        export(world, ["email"])
    # another audience of the same segment is free
    assert len(export(world, ["email", "phone"])[1]) == 3
    # an export running for more than 6 hours is taken as dead
    world.run("hold", hold, {"a": audience, "hours": 7})
    assert len(export(world, ["email"])[1]) == 2
    running = world.read("running", "MATCH (a:Audience) RETURN a.running AS r")
    assert [r["r"] for r in running] == [None, None]


def test_export_to_directory_and_listing(world: Graph, tmp_path: Path) -> None:
    request = export_request(POLICY, "seg-1", ["email"], format="ndjson")
    report = export_to_directory(services(world, policy=POLICY), request, tmp_path / "exports")
    files = list((tmp_path / "exports").iterdir())
    assert [f.name for f in files] == [report.file] == [f"{report.id}.ndjson"]
    assert len(files[0].read_text().splitlines()) == 2
    [audience] = store.audiences(world, None)
    assert audience["id"] == report.audience and audience["exported"] == 2
    assert audience["types"] == ["email"] and audience["hashed"] is False
    [recorded] = store.exports(world, None, 5)
    assert recorded["file"] == report.file and recorded["format"] == "ndjson"


def test_cli_export_to_stdout_and_file(
    world: Graph, neo4j_settings: Settings, tmp_path: Path
) -> None:
    env = server_env(neo4j_settings)
    result = idgraph(
        "audience",
        "export",
        "seg-1",
        "--types",
        "email,phone",
        "--hashed",
        "--destination",
        "meta",
        env=env,
    )
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert {r["value"] for r in rows} == {
        sha256_hex("ann@example.org"),
        sha256_hex("33612345678"),
        sha256_hex("bob@example.org"),
    }
    assert "3 rows" in result.stderr and "no consent: email 2" in result.stderr
    out = tmp_path / "delta.csv"
    result = idgraph(
        "audience",
        "export",
        "seg-1",
        "--types",
        "email,phone",
        "--hashed",
        "--destination",
        "meta",
        "--delta",
        "--out",
        str(out),
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert out.read_text() == "identity_id,type,value,op\n" and "0 rows" in result.stdout
    result = idgraph("audience", "export", "nope", "--types", "email", env=env)
    assert result.returncode == 1 and result.stderr.startswith("error: no segment 'nope'")
    listed = idgraph("audience", "list", env=env)
    assert listed.returncode == 0 and "yes (meta)" in listed.stdout


def test_end_to_end_through_resolve_profiles_and_a_segment_refresh(
    graph: Graph, tmp_path: Path
) -> None:
    """Loaded events, resolved into profiles (consent traits), a segment refreshed by the
    segments service, exported; then a consent withdrawn and a move abroad, sent as a delta."""
    init_schema(graph)
    at = datetime(2026, 11, 1, 12, tzinfo=UTC)
    load_events(
        graph,
        tmp_path,
        "people",
        [
            identify(
                1,
                user="C1",
                cookie="ck1",
                email="ann@example.org",
                country="FR",
                consent_marketing=True,
                consent_ads=True,
            ),
            identify(
                2,
                user="C2",
                cookie="ck2",
                email="bob@example.org",
                phone="+33 6 71 82 93 04",
                country="FR",
                consent_marketing=True,
            ),
            identify(3, user="C3", cookie="ck3", email="cid@example.org", country="FR"),
            identify(4, user="C4", email="dee@example.org", country="DE", consent_marketing=True),
        ],
    )
    run(graph, tmp_path)
    seg = segments.create_segment(
        services(graph, policy=POLICY, actor="t"),
        name="French",
        definition={"trait": "country", "eq": "FR"},
        now=at,
    )
    segments.refresh_segment(services(graph, policy=POLICY), seg.id, now=at)
    report, rows = export(
        graph, ["email", "phone", "cookie"], segment=seg.id, hashed=True, destination="meta"
    )
    assert {(r["type"], r["value"]) for r in rows} == {
        ("email", sha256_hex("ann@example.org")),
        ("cookie", "ck1"),
        ("email", sha256_hex("bob@example.org")),
        ("phone", sha256_hex("33671829304")),
    }
    assert report.skipped_consent == {"email": 1, "cookie": 2}
    # by name, the same audience: nothing changed since
    again, rows = export(
        graph,
        ["email", "phone", "cookie"],
        segment="French",
        hashed=True,
        destination="meta",
        delta=True,
    )
    assert again.audience == report.audience and again.segment == seg.id and rows == []
    # Bob withdraws marketing consent later; Ann moves to Belgium
    load_events(
        graph,
        tmp_path,
        "later",
        [
            identify(5, user="C2", consent_marketing=False, day=300),
            identify(6, user="C1", country="BE", day=300),
        ],
    )
    run(graph, tmp_path)
    segments.refresh_segment(services(graph, policy=POLICY), seg.id, now=at + timedelta(hours=1))
    delta, rows = export(
        graph,
        ["email", "phone", "cookie"],
        segment=seg.id,
        hashed=True,
        destination="meta",
        delta=True,
    )
    assert {(r["type"], r["op"]) for r in rows} == {
        ("email", "remove"),
        ("phone", "remove"),
        ("cookie", "remove"),
    }
    assert (delta.adds, delta.removes, delta.eligible) == (0, 4, 0)
    assert {r["value"] for r in rows} >= {sha256_hex("bob@example.org"), "ck1"}


def test_an_erased_member_is_removed_by_the_next_hashed_delta(graph: Graph, tmp_path: Path) -> None:
    from identity.privacy.forget import forget_profile

    init_schema(graph)
    load_events(
        graph,
        tmp_path,
        "people",
        [
            identify(1, user="C1", cookie="ck-1", email="ann@x.org", phone="+33 6 71 82 93 04",
                     consent_marketing=True),
            identify(2, user="C2", email="bob@x.org", consent_marketing=True),
        ],
    )  # fmt: skip
    run(graph, tmp_path)
    segments.create_segment(
        services(graph, policy=POLICY, actor="test"), name="s", definition={"consent": "marketing"}
    )
    segments.refresh_segment(services(graph, policy=POLICY), "s")
    hashed = {"segment": "s", "hashed": True, "destination": "google"}
    first, _ = export(graph, ["email", "phone"], **hashed)
    assert first.rows == 3
    export(graph, ["email"], segment="s")
    done = forget_profile(
        services(graph, tmp_path, POLICY, actor="test"),
        identifier="email:ann@x.org",
        reason="GDPR erasure",
    )
    report, rows = export(graph, ["email", "phone"], delta=True, **hashed)
    assert sorted((r["type"], r["value"], r["op"]) for r in rows) == [
        ("email", hashed_for("google", "email", "ann@x.org"), "remove"),
        ("phone", hashed_for("google", "phone", "+33671829304"), "remove"),
    ]
    assert {r["identity_id"] for r in rows} == {done.identity} and report.removes == 2
    # sent once; a plain audience cannot name what was erased (a full export replaces it)
    assert export(graph, ["email", "phone"], delta=True, **hashed)[1] == []
    assert export(graph, ["email"], segment="s", delta=True)[1] == []
    owed = graph.read("owed", "MATCH (e:AudienceErasure) RETURN count(e) AS n")
    assert owed == [{"n": 0}]
