"""The segment language without a server: parsing, every kind of problem with its path, the
canonical form, the reference semantics, and compiled Cypher that holds no input text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from identity.errors import InputError
from identity.policy import Policy
from identity.segments.language import (
    MAX_DEPTH,
    MAX_NODES,
    SegmentDefinitionError,
    matches,
    parse,
    to_json,
    traits_of,
)
from identity.store.segment_query import compile_condition
from tests.marketing import trees

TYPES = Policy().types
NOW = datetime(2026, 11, 1, tzinfo=UTC)


def problems(definition: Any) -> list[tuple[str, str]]:
    with pytest.raises(SegmentDefinitionError) as caught:
        parse(definition, TYPES)
    assert isinstance(caught.value, InputError)
    return caught.value.problems


def test_a_full_definition_parses_and_round_trips() -> None:
    definition = {
        "all": [
            {"trait": "country", "eq": "FR"},
            {"any": [{"trait": "age", "gte": 18}, {"trait": "tier", "in": ["gold", "silver"]}]},
            {"not": {"trait": "churned", "eq": True}},
            {"trait": "email_domain", "contains": "example"},
            {"trait": "vip", "exists": False},
            {"has_identifier": "email", "count_gte": 2},
            {"event": "Order Completed", "count_gte": 2, "within_days": 30},
            {"event": "Signed Up"},
            {"dmp_segment": "travel_intenders"},
            {"consent": "marketing"},
            {"last_seen_within_days": 90},
        ]
    }
    tree = parse(definition, TYPES)
    assert to_json(tree) == definition
    assert parse(to_json(tree), TYPES) == tree
    assert traits_of(tree) == ["country", "age", "tier", "churned", "email_domain", "vip"]


def test_json_text_is_accepted_and_bad_json_is_reported() -> None:
    assert to_json(parse('{"consent": "ads"}', TYPES)) == {"consent": "ads"}
    [(path, reason)] = problems("{not json")
    assert path == "$" and reason.startswith("not JSON")


def test_defaults_are_dropped_from_the_canonical_form() -> None:
    tree = parse({"has_identifier": "email", "count_gte": 1}, TYPES)
    assert to_json(tree) == {"has_identifier": "email"}
    assert to_json(parse({"event": "X", "count_gte": 1}, TYPES)) == {"event": "X"}


@pytest.mark.parametrize(
    ("definition", "path", "reason"),
    [
        (
            {"all": [{"trait": "a", "eq": 1}, {"trait": "b", "eq": 1, "foo": 2}]},
            "$.all[1].foo",
            "unknown key",
        ),
        ({"trait": "a", "eq": 1, "gt": 2}, "$", "exactly one operator"),
        ({"trait": "a"}, "$", "got none"),
        ({"trait": "a", "eq": [1]}, "$.eq", "got a list"),
        ({"trait": "a", "eq": None}, "$.eq", "got null"),
        ({"trait": "a", "in": []}, "$.in", "non-empty list"),
        ({"trait": "a", "in": [1, {"x": 1}]}, "$.in", "non-empty list"),
        ({"trait": "a", "gt": True}, "$.gt", "a number or a string"),
        ({"trait": "a", "contains": 3}, "$.contains", "non-empty string"),
        ({"trait": "a", "exists": "yes"}, "$.exists", "true or false"),
        ({"trait": "", "eq": 1}, "$.trait", "non-empty string"),
        ({"trait": 5, "eq": 1}, "$.trait", "non-empty string"),
        ({"any": []}, "$.any", "non-empty list"),
        ({"all": {"trait": "a", "eq": 1}}, "$.all", "non-empty list"),
        ({"not": [{"consent": "x"}]}, "$.not", "must be an object"),
        ({"has_identifier": "emial"}, "$.has_identifier", "unknown identifier type 'emial'"),
        ({"has_identifier": "email", "count_gte": 0}, "$.count_gte", "from 1"),
        ({"event": "X", "within_days": "30"}, "$.within_days", "whole number"),
        ({"event": "X", "count_gte": 1.5}, "$.count_gte", "whole number"),
        ({"event": "X", "count_gte": True}, "$.count_gte", "whole number"),
        ({"dmp_segment": None}, "$.dmp_segment", "non-empty string"),
        ({"consent": ""}, "$.consent", "non-empty string"),
        ({"last_seen_within_days": -3}, "$.last_seen_within_days", "from 1"),
        ({"trait": "a", "eq": 1, "consent": "x"}, "$", "mixes trait and consent"),
        ({"country": "FR"}, "$", "no condition in 'country'"),
        ({}, "$", "no condition"),
        ([{"consent": "x"}], "$", "must be an object"),
        ({"trait": "a", "eq": float("nan")}, "$.eq", "got a non-finite number"),
    ],
)
def test_each_problem_is_reported_at_its_path(definition: Any, path: str, reason: str) -> None:
    found = problems(definition)
    assert any(p == path and reason in r for p, r in found), found


def test_all_problems_are_reported_at_once() -> None:
    found = problems(
        {
            "any": [
                {"trait": "a", "eq": 1, "neq": 2},
                {"not": {"has_identifier": "fax"}},
                {"event": "", "within_days": 0},
                {"all": [{"consent": "ads", "extra": 1}]},
            ]
        }
    )
    paths = [p for p, _ in found]
    assert paths == [
        "$.any[0]",
        "$.any[1].not.has_identifier",
        "$.any[2].event",
        "$.any[2].within_days",
        "$.any[3].all[0].extra",
    ]
    with pytest.raises(SegmentDefinitionError, match=r"\(2 problems\): \$\.all\[0\]: .*; \$\.all"):
        parse({"all": [{"trait": "a"}, {"consent": 1}]}, TYPES)


def test_depth_and_size_limits() -> None:
    deep: dict[str, Any] = {"consent": "x"}
    for _ in range(MAX_DEPTH - 1):
        deep = {"not": deep}
    parse(deep, TYPES)  # exactly the limit
    found = problems({"not": deep})
    assert found == [
        ("$" + ".not" * MAX_DEPTH, f"nested deeper than {MAX_DEPTH} levels: flatten the definition")
    ]
    parse({"any": [{"consent": str(i)} for i in range(MAX_NODES - 1)]}, TYPES)
    found = problems({"any": [{"consent": str(i)} for i in range(MAX_NODES)]})
    assert found == [("$", f"more than {MAX_NODES} conditions: split it into simpler segments")]


def _p(**props: Any) -> dict[str, Any]:
    return {k.replace("__", "."): v for k, v in props.items()}


@pytest.mark.parametrize(
    ("definition", "profile", "expected"),
    [
        ({"trait": "country", "eq": "FR"}, _p(trait__country="FR"), True),
        ({"trait": "country", "eq": "FR"}, _p(trait__country="fr"), False),
        ({"trait": "n", "eq": 1}, _p(trait__n=1.0), True),
        ({"trait": "n", "eq": 1}, _p(trait__n="1"), False),
        ({"trait": "n", "eq": 1}, _p(trait__n=True), False),
        ({"trait": "b", "eq": True}, _p(trait__b=True), True),
        ({"trait": "country", "neq": "FR"}, _p(trait__country="DE"), True),
        ({"trait": "country", "neq": "FR"}, _p(), False),  # neq needs the trait
        ({"not": {"trait": "country", "eq": "FR"}}, _p(), True),  # not eq includes missing
        ({"trait": "t", "in": ["a", 2]}, _p(trait__t=2), True),
        ({"trait": "age", "gt": 30}, _p(trait__age="40"), False),  # no cross-type order
        ({"trait": "age", "gte": 30}, _p(trait__age=30), True),
        ({"trait": "age", "lt": 30}, _p(trait__age=29.5), True),
        ({"trait": "d", "lte": "2026-01-01"}, _p(trait__d="2025-12-31"), True),
        ({"trait": "e", "contains": "@ex"}, _p(trait__e="a@ex.org"), True),
        ({"trait": "e", "contains": "1"}, _p(trait__e=123), False),
        ({"trait": "e", "exists": True}, _p(trait__e=0), True),
        ({"trait": "e", "exists": False}, _p(), True),
        ({"has_identifier": "email"}, _p(count__email=1), True),
        ({"has_identifier": "email", "count_gte": 2}, _p(count__email=1), False),
        ({"has_identifier": "email"}, _p(), False),
        ({"event": "Buy"}, _p(), False),
        (
            {"event": "Buy", "count_gte": 2, "within_days": 30},
            {"event_count.Buy": 2, "event_last.Buy": NOW - timedelta(days=29)},
            True,
        ),
        (
            {"event": "Buy", "within_days": 30},
            {"event_count.Buy": 9, "event_last.Buy": NOW - timedelta(days=31)},
            False,
        ),
        ({"dmp_segment": "travel"}, {"dmp.travel": NOW + timedelta(seconds=1)}, True),
        ({"dmp_segment": "travel"}, {"dmp.travel": NOW}, False),  # expired
        ({"consent": "marketing"}, {"consent.marketing": True}, True),
        ({"consent": "marketing"}, {"consent.marketing": False}, False),
        ({"consent": "marketing"}, {}, False),  # unknown is not granted
        ({"last_seen_within_days": 7}, {"last_seen": NOW - timedelta(days=6)}, True),
        ({"last_seen_within_days": 7}, {"last_seen": NOW - timedelta(days=8)}, False),
    ],
)
def test_reference_semantics(definition: Any, profile: dict[str, Any], expected: bool) -> None:
    assert matches(parse(definition, TYPES), profile, NOW) is expected
    assert matches(parse({"not": definition}, TYPES), profile, NOW) is not expected


MARK = "Ω"  # every name and string value below carries it: the compiled text must not
names = st.text(min_size=0, max_size=12).map(lambda s: MARK + s + "'`\"}")
scalars = st.one_of(names, st.integers(-5, 5), st.booleans(), st.floats(-5, 5, allow_nan=False))
ordered = st.one_of(names, st.integers(-5, 5))
leaves = st.one_of(
    st.builds(lambda n, v: {"trait": n, "eq": v}, names, scalars),
    st.builds(lambda n, v: {"trait": n, "neq": v}, names, scalars),
    st.builds(lambda n, v: {"trait": n, "in": v}, names, st.lists(scalars, min_size=1, max_size=3)),
    st.builds(
        lambda n, o, v: {"trait": n, o: v},
        names,
        st.sampled_from(["gt", "gte", "lt", "lte"]),
        ordered,
    ),
    st.builds(lambda n, v: {"trait": n, "contains": v}, names, names),
    st.builds(lambda n, v: {"trait": n, "exists": v}, names, st.booleans()),
    st.builds(
        lambda t, c: {"has_identifier": t, "count_gte": c},
        st.sampled_from(TYPES),
        st.integers(1, 3),
    ),
    st.builds(
        lambda n, c, d: {"event": n, "count_gte": c, "within_days": d},
        names,
        st.integers(1, 3),
        st.integers(1, 60),
    ),
    st.builds(lambda n: {"dmp_segment": n}, names),
    st.builds(lambda n: {"consent": n}, names),
    st.builds(lambda d: {"last_seen_within_days": d}, st.integers(1, 60)),
)


definitions = trees(leaves, 12)


@settings(max_examples=300, deadline=None)
@given(definitions)
def test_compiled_cypher_holds_no_input_text(definition: dict[str, Any]) -> None:
    tree = parse(definition, TYPES)
    assert parse(to_json(tree), TYPES) == tree
    where, params = compile_condition(tree, NOW)
    assert MARK not in where and "'" not in where and "`" not in where and '"' not in where
    assert set(params) == {f"s{i}" for i in range(len(params))}
    assert where.count("(") == where.count(")")
