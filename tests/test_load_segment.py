"""Segment events into the graph, checked with Cypher."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import pytest

from identity.errors import InputError
from identity.store.driver import Graph
from tests.loading import fingerprint, keys, links, load_segment, props

pytestmark = pytest.mark.neo4j

HARD_CASES = [
    {
        "type": "identify",
        "messageId": "m1",
        "timestamp": "2026-10-01T10:00:00Z",
        "anonymousId": "ck-1",
        "userId": "C001",
        "traits": {
            "email": " John.Doe@Example.COM ",
            "phone": "06 11 22 33 44",
            "first_name": "John",
            "consent_marketing": True,
        },
    },
    {
        "type": "track",
        "messageId": "m2",
        "timestamp": "2026-10-01T10:05:00Z",
        "anonymousId": "ck-1",
        "event": "Order Completed",
        "properties": {"revenue": 12.5},
        "context": {
            "device": {"id": "dev-1", "advertisingId": "00000000-0000-0000-0000-000000000000"}
        },
    },
    {
        "type": "page",
        "messageId": "m3",
        "timestamp": "2026-10-01T10:06:00Z",
        "anonymousId": "undefined",
        "name": "Home",
    },
    {
        "type": "identify",
        "messageId": "m4",
        "timestamp": "2026-10-02T10:00:00Z",
        "anonymousId": "ck-2",
        "traits": 5,
    },
    {
        "type": "screen",
        "messageId": "m5",
        "timestamp": "2026-10-03T10:00:00Z",
        "userId": "C001",
        "name": "Cart",
        "context": {
            "device": {"id": "dev-2", "advertisingId": "AB12CD34-0000-4000-8000-00000000AAAA"},
            "traits": {"email": "john.doe@example.com"},
            "externalIds": [{"id": "P-77", "type": "dmp_id"}, {"id": "zz", "type": "loyalty"}],
        },
    },
    {
        "type": "alias",
        "messageId": "m6",
        "timestamp": "2026-10-04T10:00:00Z",
        "userId": "C001",
        "previousId": "ck-old",
    },
    {
        "type": "track",
        "messageId": "m7",
        "timestamp": "2026-10-05T10:00:00Z",
        "userId": "C001",
        "event": "Order Completed",
    },
    {"type": "launch", "messageId": "m8", "anonymousId": "ck-9"},
    {
        "type": "track",
        "messageId": "m9",
        "timestamp": "not a time",
        "anonymousId": "ck-9",
        "event": "x",
    },
    {
        "type": "identify",
        "messageId": "m10",
        "timestamp": "2026-10-06T10:00:00Z",
        "anonymousId": "ck-3",
        "traits": {"email": " Test@Example.com", "first_name": "Kiosk"},
    },
]


def write_ndjson(path: Path, events: list[object], extra_lines: list[bytes] = ()) -> Path:  # type: ignore[assignment]
    with path.open("wb") as handle:
        for event in events:
            handle.write(json.dumps(event).encode() + b"\n")
        for line in extra_lines:
            handle.write(line + b"\n")
    return path


def test_hard_cases_become_the_right_nodes_and_links(graph: Graph, tmp_path: Path) -> None:
    path = write_ndjson(tmp_path / "events.ndjson", HARD_CASES, [b"{broken json", b"[1, 2"])
    report = load_segment(graph, path, tmp_path / "rejects")

    c = report.counts
    assert (c.read, c.accepted, c.rejected) == (12, 7, 5)
    assert c.read == c.accepted + c.rejected
    assert dict(c.reasons) == {
        "invalid_json": 2,
        "no_identifier": 1,
        "unknown_type": 1,
        "invalid_timestamp": 1,
    }
    assert dict(c.value_reasons) == {
        "all_zero_id": 1,
        "wrong_type": 1,
        "unknown_type": 1,
        "blocked_value": 1,  # test@example.com, whatever its case and spaces
    }

    assert keys(graph) == {
        "crm_id:C001",
        "cookie:ck-1",
        "cookie:ck-2",
        "cookie:ck-old",
        "cookie:ck-3",
        "email:john.doe@example.com",
        "phone:+33611223344",
        "device:dev-1",
        "device:dev-2",
        "maid:ab12cd34-0000-4000-8000-00000000aaaa",
        "dmp_id:P-77",
    }
    labels = graph.read("labels", "MATCH (i:Identifier) RETURN i.key AS k, labels(i) AS l")
    by_key = {row["k"]: sorted(row["l"]) for row in labels}
    # the type's label; Stated on identifiers that say something (traits, events, segments)
    assert by_key["crm_id:C001"] == ["CrmId", "Identifier", "Stated"]
    assert by_key["email:john.doe@example.com"] == ["Email", "Identifier"]
    assert by_key["dmp_id:P-77"] == ["DmpId", "Identifier"]

    found = links(graph)
    assert ("cookie:ck-1", "crm_id:C001") in found
    assert ("cookie:ck-1", "email:john.doe@example.com") in found
    assert ("cookie:ck-1", "device:dev-1") in found
    assert ("cookie:ck-old", "crm_id:C001") in found  # alias previousId
    assert ("crm_id:C001", "dmp_id:P-77") in found  # externalIds
    # one relationship per unordered pair, always from the smaller key to the larger
    assert all(a < b for a, b in found)
    email_link = found[("crm_id:C001", "email:john.doe@example.com")]
    assert email_link["count"] == 2  # identify m1 and screen m5: case/space variants collapse
    assert email_link["sources"] == ["segment"] and email_link["party"] == "first"
    assert email_link["evidence"] == [
        f"2026-10-01T10:00:00.000Z {report.batch_id}:m1",
        f"2026-10-03T10:00:00.000Z {report.batch_id}:m5",
    ]
    assert "maid:00000000-0000-0000-0000-000000000000" not in keys(graph)

    seen = graph.read(
        "seen",
        "MATCH (i:Identifier {key: 'crm_id:C001'}) RETURN i.seen AS n, "
        "toString(i.first_seen) AS f, toString(i.last_seen) AS l",
    )
    assert seen == [{"n": 4, "f": "2026-10-01T10:00:00Z", "l": "2026-10-05T10:00:00Z"}]

    assert props(graph, "crm_id:C001", "trait.") == {
        "trait.segment.first_name": "John",
        "trait.segment.consent_marketing": True,
    }
    assert props(graph, "cookie:ck-1", "trait.") == {}, "traits go on the userId, not the cookie"
    assert props(graph, "cookie:ck-1", "event_count.") == {"event_count.Order Completed": 1}
    assert props(graph, "crm_id:C001", "event_count.") == {
        "event_count.Order Completed": 1,
        "event_count.screen:Cart": 1,
    }
    last = props(graph, "crm_id:C001", "event_last.")["event_last.Order Completed"]
    assert last.to_native().isoformat() == "2026-10-05T10:00:00+00:00"

    rejects = [json.loads(line) for line in report.rejects_file.read_text().splitlines()]  # type: ignore[union-attr]
    assert len(rejects) == c.rejected + sum(c.value_reasons.values())
    by_code = {r["code"]: r for r in reversed(rejects)}
    assert by_code["invalid_json"]["line"] == 11
    assert by_code["invalid_json"]["raw"] == "{broken json\n"
    assert by_code["no_identifier"]["line"] == 3
    assert by_code["wrong_type"]["field"] == "traits"


def test_same_file_twice_changes_nothing(graph: Graph, tmp_path: Path) -> None:
    path = write_ndjson(tmp_path / "events.ndjson", HARD_CASES)
    first = load_segment(graph, path, tmp_path)
    before = fingerprint(graph)
    second = load_segment(graph, path, tmp_path)
    assert second.status == "already_loaded" and second.batch_id == first.batch_id
    assert second.counts == first.counts
    assert fingerprint(graph) == before


def test_same_message_id_in_another_file_counts_once(graph: Graph, tmp_path: Path) -> None:
    load_segment(graph, write_ndjson(tmp_path / "a.ndjson", HARD_CASES[:2]), tmp_path)
    before = fingerprint(graph)
    again = [*HARD_CASES[:2], {**HARD_CASES[6], "messageId": "new"}]
    report = load_segment(graph, write_ndjson(tmp_path / "b.ndjson", again), tmp_path)
    assert report.counts.reasons["duplicate_message_id"] == 2
    assert report.counts.accepted == 1
    after = fingerprint(graph)
    assert after["links"] == before["links"]
    seen = graph.read("seen", "MATCH (i:Identifier {key: 'cookie:ck-1'}) RETURN i.seen AS n")
    assert seen == [{"n": 2}]


@pytest.mark.parametrize("layout", ["array", "batch", "pretty_batch", "batch_lines", "gzip"])
def test_file_layouts(graph: Graph, tmp_path: Path, layout: str) -> None:
    events = HARD_CASES[:2]
    path = tmp_path / "events.json"
    if layout == "array":
        path.write_text(json.dumps(events))
    elif layout == "batch":
        path.write_text(json.dumps({"batch": events, "sentAt": "2026-10-06T00:00:00Z"}))
    elif layout == "pretty_batch":
        path.write_text(json.dumps({"batch": events}, indent=2))
    elif layout == "batch_lines":
        path.write_text("\n".join(json.dumps({"batch": [e]}) for e in events))
    else:
        path = tmp_path / "events.ndjson.gz"
        path.write_bytes(gzip.compress(b"\n".join(json.dumps(e).encode() for e in events)))
    report = load_segment(graph, path, tmp_path)
    assert (report.counts.read, report.counts.accepted) == (2, 2)
    assert ("cookie:ck-1", "crm_id:C001") in links(graph)


def test_hashed_pii_mode(graph: Graph, tmp_path: Path) -> None:
    path = write_ndjson(tmp_path / "events.ndjson", HARD_CASES[:1])
    load_segment(graph, path, tmp_path, hash_pii=True)
    digest = hashlib.sha256(b"john.doe@example.com").hexdigest()
    phone = hashlib.sha256(b"+33611223344").hexdigest()
    assert keys(graph) == {"crm_id:C001", "cookie:ck-1", f"email:{digest}", f"phone:{phone}"}
    rows = graph.read("hashed", "MATCH (i:Email) RETURN i.hashed AS h, i.value AS v")
    assert rows == [{"h": True, "v": digest}]
    text = json.dumps(fingerprint(graph))
    assert "john.doe" not in text and "611223344" not in text


def test_non_utf8_and_huge_lines_are_rejected_alone(graph: Graph, tmp_path: Path) -> None:
    path = tmp_path / "events.ndjson"
    with path.open("wb") as handle:
        handle.write(json.dumps(HARD_CASES[0]).encode() + b"\n")
        handle.write(b'{"type": "track", "anonymousId": "caf\xe9", "event": "x"}\n')
        handle.write(b'{"type": "track", "anonymousId": "')
        block = b"x" * (1 << 20)
        for _ in range(100):  # a 100 MB line
            handle.write(block)
        handle.write(b'", "event": "x"}\n')
        handle.write(json.dumps(HARD_CASES[1]).encode() + b"\n")
    report = load_segment(graph, path, tmp_path, max_record_bytes=4 << 20)
    c = report.counts
    assert (c.read, c.accepted, c.rejected) == (4, 2, 2)
    assert dict(c.reasons) == {"invalid_utf8": 1, "record_too_large": 1}
    rejects = report.rejects_file.read_text()  # type: ignore[union-attr]
    assert len(rejects) < 20_000, "the rejects file must not copy a huge line"
    assert "cookie:ck-1" in keys(graph)


def test_empty_file_is_a_clear_error(graph: Graph, tmp_path: Path) -> None:
    path = tmp_path / "empty.ndjson"
    path.write_bytes(b"")
    with pytest.raises(InputError, match="is empty"):
        load_segment(graph, path, tmp_path)
    assert graph.read("batches", "MATCH (b:Batch) RETURN count(b) AS n") == [{"n": 0}]
