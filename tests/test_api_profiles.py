"""The merged profile through the API: chosen traits with their origin, observations,
consents, computed traits and unexpired third-party segments."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from identity.store.driver import Graph
from tests.api_server import READER, gql
from tests.loading import load_csv
from tests.resolving import identify, load_events, run

pytestmark = pytest.mark.neo4j

QUERY = """
query ($value: String!) {
  profile(identifier: {type: "crm_id", value: $value}) {
    traits { name value source observedAt identifier }
    traitObservations { name value source identifier }
    consents { purpose granted source observedAt }
    identifierCounts { type count }
    firstSeen lastSeen
    dmpSegments { name expiresAt }
    events { name count }
  }
}
"""


def _table(
    graph: Graph, tmp_path: Path, name: str, header: str, rows: list[str], mapping: str
) -> None:
    data, spec = tmp_path / f"{name}.csv", tmp_path / f"{name}.toml"
    data.write_text(header + "\n" + "".join(r + "\n" for r in rows))
    spec.write_text(mapping)
    report = load_csv(graph, data, spec, tmp_path / "rejects")
    assert report.counts.rejected == 0, report.counts


@pytest.fixture
def ann(graph: Graph, tmp_path: Path) -> str:
    load_events(
        graph,
        tmp_path,
        "web",
        [
            identify(1, user="C1", cookie="ck-1", email="ann@x.org", city="Paris",
                     consent_marketing=True, day=280),
            identify(2, cookie="ck-1", consent_marketing="no", day=300),
        ],
    )  # fmt: skip
    _table(
        graph,
        tmp_path,
        "crm",
        "id,city,optin,updated",
        ["C1,Lyon,yes,2026-10-10T00:00:00Z"],
        'source = "crm"\nparty = "first"\ntimestamp = "updated"\n'
        '[identifiers]\nid = "crm_id"\n[traits]\ncity = "city"\noptin = "consent_marketing"\n',
    )
    recent = (datetime.now(UTC) - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    _table(
        graph,
        tmp_path,
        "dmp",
        "cookie,partner_id,segments,ttl_days,seen_at",
        [f"ck-1,p-1,travel|gamer,30,{recent}", "ck-1,p-1,sports,30,2026-01-05T00:00:00Z"],
        'source = "dmp"\nparty = "third"\ntimestamp = "seen_at"\n'
        '[identifiers]\ncookie = "cookie"\npartner_id = "dmp_id"\n'
        '[segments]\ncolumn = "segments"\nseparator = "|"\nttl_column = "ttl_days"\n',
    )
    run(graph, tmp_path)
    return "C1"


def _profile(api: str, value: str) -> dict[str, Any]:
    body = gql(api, QUERY, {"value": value}, READER)
    assert "errors" not in body, body
    profile: dict[str, Any] = body["data"]["profile"]
    return profile


def test_traits_are_chosen_by_precedence_and_say_where_from(api: str, ann: str) -> None:
    p = _profile(api, ann)
    city = [t for t in p["traits"] if t["name"] == "city"]
    assert city == [
        {
            "name": "city",
            "value": "Lyon",
            "source": "crm",
            "observedAt": "2026-10-10T00:00:00+00:00",
            "identifier": "crm_id:C1",
        }
    ]
    observed = sorted(
        (t["value"], t["source"]) for t in p["traitObservations"] if t["name"] == "city"
    )
    assert observed == [("Lyon", "crm"), ("Paris", "segment")]


def test_consent_takes_the_latest_whatever_the_source(api: str, ann: str) -> None:
    p = _profile(api, ann)
    assert p["consents"] == [
        {
            "purpose": "marketing",
            "granted": False,
            "source": "segment",
            "observedAt": "2026-10-27T10:00:00+00:00",
        }
    ]
    chosen = [t for t in p["traits"] if t["name"] == "consent_marketing"]
    assert [(t["value"], t["source"]) for t in chosen] == [("no", "segment")]


def test_computed_traits_and_unexpired_dmp_segments(api: str, ann: str) -> None:
    p = _profile(api, ann)
    counts = {c["type"]: c["count"] for c in p["identifierCounts"]}
    assert counts == {"cookie": 1, "crm_id": 1, "email": 1}
    assert p["firstSeen"] == "2026-01-05T00:00:00+00:00"  # the DMP saw the cookie first
    assert p["lastSeen"] is not None and p["lastSeen"] > p["firstSeen"]
    # the sports segment (seen in January, 30 days) expired: it shows nowhere
    assert [s["name"] for s in p["dmpSegments"]] == ["gamer", "travel"]
    assert all(s["expiresAt"] > datetime.now(UTC).isoformat() for s in p["dmpSegments"])
