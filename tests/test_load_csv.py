"""CSV tables through mapping files into the graph, checked with Cypher."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from identity.errors import InputError
from identity.normalize import DEFAULT_TYPES
from identity.store.driver import Graph
from loaders.table import load_mapping
from tests.loading import keys, links, load_csv

CRM_MAPPING = """
source = "crm"
party = "first"
timestamp = "Updated"
[identifiers]
"Customer ID" = "crm_id"
"E-mail" = "email"
"Mobile" = "phone"
[traits]
"First Name" = "first_name"
"Marketing Opt-in" = "consent_marketing"
"""

CRM = '''Customer ID,E-mail,Mobile,First Name,Marketing Opt-in,Updated
C001, Jane.Roe@Example.com ,06 98 76 54 32,Jane,yes,2026-09-01T08:00:00Z
C002,not-an-email,+33 6 11 22 33 44,Bob,no,2026-09-02
C003,,,Nobody,yes,2026-09-03
,undefined,null,Ghost,no,2026-09-04
C004,x@y.fr,,"Al, the ""Great""",opt-in,yesterday
C005,c5@y.fr,0033611223355,Eve,1,
'''

DMP_MAPPING = """
source = "dmp"
party = "third"
timestamp = "seen_at"
[identifiers]
cookie = "cookie"
partner_id = "dmp_id"
[segments]
column = "segments"
separator = "|"
ttl_column = "ttl_days"
"""

DMP = """cookie,partner_id,segments,ttl_days,seen_at
ck-1,P-1,travel_intender|auto_intender,30,2026-10-01T00:00:00Z
ck-2,P-2,travel_intender,7,2026-10-02T00:00:00Z
ck-3,P-3,sports,soon,2026-10-03T00:00:00Z
"""


def _files(tmp_path: Path, data: str, mapping: str, name: str = "t") -> tuple[Path, Path]:
    table, spec = tmp_path / f"{name}.csv", tmp_path / f"{name}.toml"
    table.write_text(data, encoding="utf-8")
    spec.write_text(mapping, encoding="utf-8")
    return table, spec


@pytest.mark.neo4j
def test_crm_export(graph: Graph, tmp_path: Path) -> None:
    table, spec = _files(tmp_path, CRM, CRM_MAPPING)
    report = load_csv(graph, table, spec, tmp_path / "rejects")
    c = report.counts
    assert (c.read, c.accepted, c.rejected) == (6, 4, 2)
    assert dict(c.reasons) == {"no_identifier": 1, "invalid_timestamp": 1}
    assert dict(c.value_reasons) == {"invalid_email": 1}
    assert keys(graph) == {
        "crm_id:C001",
        "email:jane.roe@example.com",
        "phone:+33698765432",
        "crm_id:C002",
        "phone:+33611223344",
        "crm_id:C003",
        "crm_id:C005",
        "email:c5@y.fr",
        "phone:+33611223355",
    }
    found = links(graph)
    assert set(found) == {
        ("crm_id:C001", "email:jane.roe@example.com"),
        ("crm_id:C001", "phone:+33698765432"),
        ("email:jane.roe@example.com", "phone:+33698765432"),
        ("crm_id:C002", "phone:+33611223344"),
        ("crm_id:C005", "email:c5@y.fr"),
        ("crm_id:C005", "phone:+33611223355"),
        ("email:c5@y.fr", "phone:+33611223355"),
    }
    assert {link["party"] for link in found.values()} == {"first"}
    rows = graph.read(
        "traits",
        "MATCH (i:Identifier) WHERE i.`trait.crm.first_name` IS NOT NULL RETURN i.key AS key, "
        "i.`trait.crm.first_name` AS name, i.`trait.crm.consent_marketing` AS consent",
    )
    assert {r["key"]: (r["name"], r["consent"]) for r in rows} == {
        "crm_id:C001": ("Jane", True),
        "crm_id:C002": ("Bob", False),
        "crm_id:C003": ("Nobody", True),
        "crm_id:C005": ("Eve", True),
    }
    row = graph.read(
        "batch",
        "MATCH (b:Batch)-[:FROM]->(s:Source) RETURN b.read AS r, "
        "b.status AS st, s.name AS s, s.party AS p",
    )
    assert row == [{"r": 6, "st": "completed", "s": "crm", "p": "first"}]


@pytest.mark.neo4j
def test_dmp_feed_segments_expire_and_links_are_third_party(graph: Graph, tmp_path: Path) -> None:
    table, spec = _files(tmp_path, DMP, DMP_MAPPING)
    report = load_csv(graph, table, spec, tmp_path)
    assert dict(report.counts.value_reasons) == {"invalid_ttl": 1}
    found = links(graph)
    assert found[("cookie:ck-1", "dmp_id:P-1")]["party"] == "third"
    assert found[("cookie:ck-1", "dmp_id:P-1")]["sources"] == ["dmp"]
    rows = graph.read(
        "segments",
        "MATCH (i:Identifier)-[m:IN_SEGMENT]->(s:DmpSegment) "
        "RETURN i.key AS key, s.name AS name, toString(m.expires_at) AS expires",
    )
    got = {(r["key"], r["name"]): r["expires"] for r in rows}
    assert got[("cookie:ck-1", "travel_intender")] == "2026-10-31T00:00:00Z"
    assert got[("dmp_id:P-2", "travel_intender")] == "2026-10-09T00:00:00Z"
    assert not any(key == "cookie:ck-3" for key, _ in got)


@pytest.mark.neo4j
def test_gzip_and_non_utf8_rows(graph: Graph, tmp_path: Path) -> None:
    data = (CRM.splitlines()[0] + "\n").encode() + b"C009,caf\xe9@x.fr,,A,yes,2026-09-01\n"
    data += b"C010,ok@x.fr,,B,no,2026-09-01\n"
    table, spec = tmp_path / "crm.csv.gz", tmp_path / "crm.toml"
    table.write_bytes(gzip.compress(data))
    spec.write_text(CRM_MAPPING)
    report = load_csv(graph, table, spec, tmp_path)
    assert (report.counts.read, report.counts.accepted) == (2, 1)
    assert dict(report.counts.reasons) == {"invalid_utf8": 1}
    assert keys(graph) == {"crm_id:C010", "email:ok@x.fr"}


@pytest.mark.neo4j
def test_missing_column_fails_before_loading(graph: Graph, tmp_path: Path) -> None:
    table, spec = _files(tmp_path, CRM.replace("Mobile", "Portable"), CRM_MAPPING)
    with pytest.raises(InputError, match="'Mobile' named in the mapping are not in the file"):
        load_csv(graph, table, spec, tmp_path)
    assert graph.read("any", "MATCH (n) WHERE NOT n:SchemaVersion RETURN count(n) AS n") == [
        {"n": 0}
    ]


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        (
            CRM_MAPPING.replace('"crm_id"', '"customer_number"'),
            "unknown identifier type 'customer_number'",
        ),
        (CRM_MAPPING.replace('party = "first"', 'party = "fourth"'), "party must be one of"),
        (CRM_MAPPING.replace('source = "crm"', ""), "source must be a name"),
        ('source = "x"\n[traits]\n"a" = "b"', "[identifiers] must map at least one column"),
        (DMP_MAPPING.replace('ttl_column = "ttl_days"', ""), "exactly one of ttl_days"),
        ("colour = 1\n" + CRM_MAPPING, "unknown key(s) colour"),
        ("source = ", "not valid TOML"),
    ],
)
def test_bad_mappings_are_named(tmp_path: Path, mapping: str, message: str) -> None:
    path = tmp_path / "m.toml"
    path.write_text(mapping)
    with pytest.raises(InputError) as info:
        load_mapping(path, DEFAULT_TYPES)
    assert message in str(info.value)
    assert str(path) in str(info.value)


@pytest.mark.neo4j
def test_a_load_stopped_by_an_error_is_marked_failed_and_stops_its_writers(
    graph: Graph, tmp_path: Path
) -> None:
    import threading

    from identity.config import load_settings
    from identity.ingest.service import load_file
    from identity.normalize import make_normalizer
    from identity.policy import Policy
    from identity.store.schema import init_schema
    from loaders.table import read_table

    # read_table checks the header itself when the caller skipped check_header
    table, spec_path = _files(tmp_path, CRM.replace("Mobile", "Portable"), CRM_MAPPING)
    spec = load_mapping(spec_path, DEFAULT_TYPES)
    normalizer = make_normalizer(load_settings(), Policy())
    init_schema(graph)
    with pytest.raises(InputError, match="'Mobile' named in the mapping"):
        load_file(
            graph,
            table,
            lambda stream, now: read_table(stream, spec, normalizer, now=now),
            kind="csv",
            source="crm",
            party="first",
            rejects_dir=tmp_path,
            chunk_size=10,
        )
    rows = graph.read("batch", "MATCH (b:Batch) RETURN b.status AS status, b.error AS error")
    assert rows[0]["status"] == "failed" and "Mobile" in rows[0]["error"]
    assert not [t for t in threading.enumerate() if t.name.startswith("idgraph-writer")]
