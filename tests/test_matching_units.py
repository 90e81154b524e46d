"""Record matching without a server: the ``[match]`` section, cleaning, and the model's
precision and recall on the FEBRL data sets (the targets of docs/matching.md)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import duckdb
import pytest

from identity.errors import InputError
from identity.matching import model
from identity.matching.records import CLEAN, read_records
from identity.normalize import Normalizer
from loaders.match_spec import MatchSpec
from loaders.table import parse_mapping
from tests.matching_data import FEBRL_MAPPING, febrl_table

TYPES = ("crm_id", "email", "phone")


def mapping(match: dict[str, Any] | None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "source": "crm",
        "identifiers": {"Customer ID": "crm_id", "E-mail": "email"},
    }
    if match is not None:
        data["match"] = match
    return data


def test_mappings_without_a_match_section_load_as_before() -> None:
    assert parse_mapping(mapping(None), TYPES).match is None


def test_the_match_section_and_its_default_blocking() -> None:
    spec = parse_mapping(
        mapping(
            {
                "record": "Customer ID",
                "compare": {
                    "First Name": "name",
                    "Last Name": "name",
                    "Birth Date": "dob",
                    "E-mail": "email",
                },
            }
        ),
        TYPES,
    ).match
    assert isinstance(spec, MatchSpec)
    assert [c.name for c in spec.compared] == ["first_name", "last_name", "birth_date", "e_mail"]
    # each dob/postcode/email/phone/text column alone, the names together
    assert spec.blocking == (("birth_date",), ("e_mail",), ("first_name", "last_name"))
    assert spec.columns == ["Customer ID", "First Name", "Last Name", "Birth Date", "E-mail"]
    assert len(spec.fingerprint()) == 16


@pytest.mark.parametrize(
    ("match", "message"),
    [
        ({"record": "Nope", "compare": {"E-mail": "email"}}, "record must name one of"),
        ({"record": "Customer ID", "compare": {"E-mail": "soundex"}}, "unknown kind 'soundex'"),
        ({"record": "Customer ID"}, "[match.compare] must map"),
        (
            {"record": "Customer ID", "compare": {"E-mail": "email"}, "blocking": [["Zip"]]},
            "names 'Zip', not a column of [match.compare]",
        ),
        ({"record": "Customer ID", "compare": {"Name": "name"}, "blocking": "Name"}, "a list"),
        ({"record": "Customer ID", "compare": {"E-mail": "email"}, "weights": 1}, "unknown key"),
        ({"record": "Customer ID", "compare": {"City": "city"}}, "needs a blocking rule"),
    ],
)
def test_mistakes_in_the_section_are_named(match: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match="mapping: ") as caught:
        parse_mapping(mapping(match), TYPES)
    assert message in str(caught.value)


def test_cleaning_makes_equal_what_only_looks_different() -> None:
    assert CLEAN["name"]("  Jean-Pierre ") == "jean pierre"
    assert CLEAN["name"]("Hélène") == "helene"
    assert CLEAN["dob"]("19561230") == CLEAN["dob"]("1956-12-30") == CLEAN["dob"]("30/12/1956")
    assert CLEAN["dob"]("1956-13-45") == "1956-13-45"  # kept: a typo is still a near match
    assert CLEAN["dob"]("12 30 1956x") == "12301956"
    assert CLEAN["postcode"]("75 011") == "75011"
    assert CLEAN["email"](" Jean.Martin+shop@X.com") == "jean.martin@x.com"
    assert CLEAN["phone"]("+33 6 12 34 56 78") == CLEAN["phone"]("06.12.34.56.78") == "612345678"
    assert CLEAN["phone"]("123") is None


def test_rejected_records_are_reported_and_the_rest_read(tmp_path: Path) -> None:
    table = tmp_path / "crm.csv"
    table.write_text(
        "Customer ID,E-mail,Name\nC1,a@x.com,Ann\n,b@x.com,Bob\nC1,c@x.com,Cy\nC2,d@x.com\n"
        "C3,null,Dee\n",
        encoding="utf-8",
    )
    parsed = parse_mapping(
        mapping({"record": "Customer ID", "compare": {"E-mail": "email", "Name": "name"}}), TYPES
    )
    con = duckdb.connect()
    records = read_records(con, table, parsed, Normalizer())
    assert (records.rows, records.count) == (5, 2)
    assert sorted(r.code for r in records.rejected) == [
        "duplicate_record",
        "nullish",
        "wrong_column_count",
    ]
    assert con.execute("SELECT record_key, e_mail, name FROM records ORDER BY 1").fetchall() == [
        ("crm_id:C1", "a@x.com", "ann"),
        ("crm_id:C3", None, "dee"),
    ]
    assert records.count + records.rejected_count == records.rows


def _pairwise(persons: list[str], found: set[tuple[int, int]]) -> tuple[float, float]:
    by_person: dict[str, list[int]] = {}
    for i, person in enumerate(persons):
        by_person.setdefault(person, []).append(i)
    truth = {p for rows in by_person.values() for p in itertools.combinations(rows, 2)}
    correct = len(found & truth)
    return correct / max(len(found), 1), correct / len(truth)


@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    ("names", "labels", "precision", "recall"),
    [
        (["dataset4a.csv", "dataset4b.csv"], False, 0.99, 0.95),
        (["dataset4a.csv", "dataset4b.csv"], True, 0.99, 0.95),
        (["dataset1.csv"], False, 0.99, 0.95),
    ],
    ids=["febrl4-em", "febrl4-labels", "febrl1-em"],
)
def test_febrl_precision_and_recall_at_the_merge_threshold(
    tmp_path: Path, names: list[str], labels: bool, precision: float, recall: float
) -> None:
    table = tmp_path / "febrl.csv"
    persons = febrl_table(names, table)
    data = {**FEBRL_MAPPING, "match": {**FEBRL_MAPPING["match"], "label": "person"}}
    parsed = parse_mapping(data, TYPES)
    assert parsed.match is not None
    con = duckdb.connect(str(tmp_path / "m.duckdb"))
    read_records(con, table, parsed, Normalizer())
    trained = model.train(con, parsed.match, labels=labels)
    found = {
        (min(p.left, p.right), max(p.left, p.right))
        for p in model.predict(con, parsed.match, trained.model, 0.99)
    }
    p, r = _pairwise(persons, found)
    print(f"{'+'.join(names)} ({trained.how}): precision {p:.4f} recall {r:.4f}")
    assert p >= precision and r >= recall
    # the weights of a pair add up to its probability (the waterfall is exact)
    pair = next(model.predict(con, parsed.match, trained.model, 0.99))
    w = model.prior_weight(trained.model) + sum(pair.weights)
    assert abs(2**w / (1 + 2**w) - pair.probability) < 1e-3
