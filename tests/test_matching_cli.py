"""``idgraph match`` as real processes on synth data: train, dry run, run, the identities it
improves (``idgraph evaluate`` with and without matching), explain's waterfall, the review
band and its decisions, and a later run that keeps them."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from identity.config import Settings
from identity.store.driver import Graph
from tests.cli import cli_env, idgraph, ok

pytestmark = pytest.mark.neo4j

AS_OF = "2026-11-01"


@pytest.fixture
def crm_loaded(graph: Graph, neo4j_settings: Settings, tmp_path: Path) -> Path:
    data = tmp_path / "synth"
    ok("synth", "--people", "400", "--out", str(data), env={})
    env = cli_env(neo4j_settings, tmp_path)
    ok("load", "segment", str(data / "events.ndjson"), env=env)
    ok("load", "csv", str(data / "crm.csv"), "--mapping", str(data / "crm.mapping.toml"), env=env)
    ok("resolve", "--as-of", AS_OF, env=env)
    return data


def _scores(text: str, name: str) -> tuple[float, float, float]:
    line = next(row for row in text.splitlines() if row.strip().startswith(name))
    precision, recall, f1 = (float(x) for x in line.split()[-6:-3])
    return precision, recall, f1


def _matched(graph: Graph) -> list[dict[str, object]]:
    return graph.read(
        "matched",
        "MATCH (x)-[r:LINKED {matched: true}]->(y) RETURN x.key AS a, y.key AS b, "
        "r.match_p AS p, r.cut AS cut, r.forced AS forced ORDER BY a, b",
    )


@pytest.mark.timeout(900)
def test_matching_end_to_end(
    crm_loaded: Path, graph: Graph, neo4j_settings: Settings, tmp_path: Path
) -> None:
    env = cli_env(neo4j_settings, tmp_path)
    crm, mapping = str(crm_loaded / "crm.csv"), str(crm_loaded / "crm.mapping.toml")
    with (crm_loaded / "truth.csv").open(encoding="utf-8") as handle:
        truth = {f"{r['type']}:{r['value']}": r["person"] for r in csv.DictReader(handle)}
    missing = idgraph("match", "run", crm, "-m", mapping, env=env)
    assert missing.returncode == 1 and "run `idgraph match train` first" in missing.stderr

    trained = ok("match", "train", crm, "-m", mapping, env=env)
    assert "model crm v1" in trained and "expectation maximisation" in trained
    assert "crm  " in ok("match", "models", env=env) or "crm" in ok("match", "models", env=env)

    dry = ok("match", "run", crm, "-m", mapping, "--dry-run", env=env)
    assert "would write" in dry and not _matched(graph)
    ok("match", "run", crm, "-m", mapping, "--no-resolve", env=env)
    links = _matched(graph)
    assert links
    # matched pairs are one person's records (the synth's truth knows the duplicates)
    right = sum(truth[str(m["a"])] == truth[str(m["b"])] for m in links)
    assert right / len(links) >= 0.99
    incremental = ok("resolve", "--as-of", AS_OF, env=env)
    assert "incremental resolve" in incremental
    # the incremental resolve that applied the links left what a full one computes
    full = ok("resolve", "--full", "--as-of", AS_OF, env=env)
    assert re.search(r"memberships moved\s+0\n", full), full

    scores = ok("evaluate", "--truth", str(crm_loaded / "truth.csv"), env=env)
    with_matching = _scores(scores, "identities (policy)")
    without = _scores(scores, "without record matching")
    print(scores)
    assert with_matching[0] >= 0.99
    ceiling = _scores(scores, "ceiling (same-person links)")
    assert with_matching[1] >= ceiling[1] - 0.01  # matching joins what the limit kept apart
    assert with_matching[1] > without[1] and with_matching[2] > without[2]

    # explain shows the waterfall of a matched pair, as text
    pair = links[0]
    shown = ok("explain", str(pair["a"]), str(pair["b"]), "--as-of", AS_OF, env=env)
    assert "matched by record matching (crm model v1)" in shown
    assert "prior (two random records)" in shown and "match weight" in shown
    assert re.search(r"Last Name \(name\): .*[+-]\d+\.\d\d", shown)

    # a stricter policy: pairs below 1.0 go to review, their links are retracted
    policy = tmp_path / "policy.toml"
    policy.write_text("[matching]\nmerge = 1.0\nreview = 0.5\n", encoding="utf-8")
    strict = {**env, "IDGRAPH_POLICY": str(policy)}
    run = ok("match", "run", crm, "-m", mapping, "--no-resolve", env=strict)
    queued = int(re.search(r"([\d,]+) reviews", run)[1].replace(",", ""))  # type: ignore[index]
    assert queued >= 2 and "retracted" in run
    listed = ok("match", "reviews", "--waterfall", env=env)
    ids = re.findall(r"^([0-9a-f]{32})  ", listed, re.MULTILINE)
    assert len(ids) == queued and "match weight" in listed
    accepted = ok("match", "accept", ids[0], "--reason", "same customer", env=env)
    assert "accept_match" in accepted
    rejected = ok("match", "reject", ids[1], "--reason", "two people", env=env)
    assert "reject_match" in rejected
    twice = idgraph("match", "reject", ids[1], "--reason", "again", env=env)
    assert twice.returncode == 1 and "rejected by" in twice.stderr
    decided = {(str(m["a"]), str(m["b"])): m for m in _matched(graph)}
    assert sum(bool(m["forced"]) for m in decided.values()) == 1
    assert sum(bool(m["cut"]) for m in decided.values()) == 1
    # a later run queues neither decided pair again and keeps both decisions
    again = ok("match", "run", crm, "-m", mapping, "--no-resolve", env=strict)
    assert "2 already decided by a steward" in again
    after = {(str(m["a"]), str(m["b"])): m for m in _matched(graph)}
    assert sum(bool(m["forced"]) for m in after.values()) == 1
    assert sum(bool(m["cut"]) for m in after.values()) == 1
    left = re.findall(r"^([0-9a-f]{32})  ", ok("match", "reviews", env=env), re.MULTILINE)
    assert len(left) == queued - 2 and ids[0] not in left and ids[1] not in left


def test_match_commands_refuse_what_they_cannot_use(
    graph: Graph, neo4j_settings: Settings, tmp_path: Path
) -> None:
    env = cli_env(neo4j_settings, tmp_path)
    table = tmp_path / "crm.csv"
    table.write_text("Customer ID,E-mail\nC1,a@x.com\n", encoding="utf-8")
    plain = tmp_path / "plain.toml"
    plain.write_text('source = "crm"\n[identifiers]\n"Customer ID" = "crm_id"\n', encoding="utf-8")
    no_section = idgraph("match", "train", str(table), "-m", str(plain), env=env)
    assert no_section.returncode == 1 and "has no [match] section" in no_section.stderr
    section = tmp_path / "match.toml"
    section.write_text(
        plain.read_text(encoding="utf-8")
        + '[match]\nrecord = "Customer ID"\n[match.compare]\n'
        + '"E-mail" = "email"\n"Zip" = "postcode"\n',
        encoding="utf-8",
    )
    missing = idgraph("match", "train", str(table), "-m", str(section), env=env)
    assert missing.returncode == 1 and "'Zip' named in the mapping are not in the file" in (
        missing.stderr
    )
    third = tmp_path / "third.toml"
    third.write_text(
        section.read_text(encoding="utf-8").replace(
            'source = "crm"', 'source = "dmp"\nparty = "third"'
        ),
        encoding="utf-8",
    )
    table.write_text("Customer ID,E-mail,Zip\nC1,a@x.com,75001\n", encoding="utf-8")
    refused_third = idgraph("match", "train", str(table), "-m", str(third), env=env)
    assert refused_third.returncode == 1 and "is third-party" in refused_third.stderr
    bad = tmp_path / "policy.toml"
    bad.write_text("[matching]\nmerge = 0.5\nreview = 0.9\n", encoding="utf-8")
    refused = idgraph("match", "models", env={**env, "IDGRAPH_POLICY": str(bad)})
    assert refused.returncode != 0 and "matching.review (0.9) must not be above" in (
        refused.stderr + refused.stdout
    )
