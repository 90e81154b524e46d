"""The probabilistic model of record matching: Fellegi-Sunter, estimated and applied by Splink
(DuckDB backend, in process).

Fellegi and Sunter (1969, "A theory for record linkage", JASA 64) score a pair of records by
comparing them column by column: each comparison falls in a *level* (exact, Jaro-Winkler >=
0.92, ..., else), and each level has an m probability (the level's frequency among true
matches) and a u probability (among non-matches). The pair's *match weight* is the prior's
log2 odds plus ``log2(m/u)`` of each level reached (plus, for names and places, a term-
frequency adjustment: two "Smith" say less than two "Zbinden"), and its probability is
``2^w / (1 + 2^w)``. Splink (Linacre et al., ministry of justice UK) estimates u by sampling
random pairs (nearly all are non-matches), m by expectation maximisation over the pairs that
blocking rules produce (one session per rule, each leaving its own columns out), or from a
label column when records say which person they are, and compares only the pairs that share
a blocking value: O(pairs blocked), not O(n^2).

A comparison per kind (loaders.match_spec.KINDS); the model is stored as Splink's JSON.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import duckdb
import splink.comparison_level_library as cll
import splink.comparison_library as cl
from splink import Linker, SettingsCreator, block_on
from splink.backends.duckdb import DuckDBAPI

from identity.errors import InputError
from loaders.match_spec import Compared, MatchSpec

U_PAIRS = 2_000_000  # random pairs sampled to estimate u
EM_RULES = 3  # at most this many EM sessions (one per blocking rule)
RECALL = 0.7  # assumed recall of the deterministic rules that estimate the prior
SEED = 42
MIN_PROBABILITY = 1e-9
# Splink says what it could not estimate through its logger; the reports say what matters
logging.getLogger("splink").setLevel(logging.ERROR)


def _comparison(c: Compared) -> Any:
    n = c.name
    if c.kind == "name":
        return cl.JaroWinklerAtThresholds(n, [0.92, 0.8]).configure(term_frequency_adjustments=True)
    if c.kind == "dob":
        return cl.LevenshteinAtThresholds(n, [1, 2])
    if c.kind == "postcode":
        return cl.LevenshteinAtThresholds(n, [1]).configure(term_frequency_adjustments=True)
    if c.kind == "city":
        return cl.JaroWinklerAtThresholds(n, [0.92]).configure(term_frequency_adjustments=True)
    if c.kind == "street":
        return cl.JaroWinklerAtThresholds(n, [0.92, 0.8])
    if c.kind == "email":
        return cl.EmailComparison(n)
    if c.kind == "phone":
        return cl.LevenshteinAtThresholds(n, [1, 2])
    return cl.LevenshteinAtThresholds(n, [1, 2])  # text


PLACES = ("postcode", "street", "city")


@dataclass(frozen=True)
class Comparison:
    name: str  # Splink's output column name (mw_<name>, gamma_<name>)
    shown: str  # as explain shows it: "Last Name (name)"
    creator: Any


def comparisons(spec: MatchSpec) -> list[Comparison]:
    """One comparison per compared column, except the parts of an address (postcode, street,
    city: two or more), which are one comparison: compared apart, one address would count
    three times as evidence (Fellegi-Sunter takes comparisons as independent) and relatives
    at one address would outweigh their different first names and birth dates."""
    places = [c for c in spec.compared if c.kind in PLACES]
    found = []
    for c in spec.compared:
        if c.kind in PLACES and len(places) > 1:
            if c is places[0]:
                taken = {x.name for x in spec.compared}
                name = "address" if "address" not in taken else "address_parts"
                shown = f"{', '.join(p.column for p in places)} (address)"
                found.append(Comparison(name, shown, _address(name, places)))
            continue
        found.append(Comparison(c.name, f"{c.column} ({c.kind})", _comparison(c)))
    return found


def _address(name: str, places: list[Compared]) -> Any:
    """Levels, strongest first: street and postcode equal; street similar, postcode equal;
    postcode equal; street equal in the same city; city equal; else (null: all missing)."""
    by = {p.kind: p.name for p in places}
    postcode, street, city = by.get("postcode"), by.get("street"), by.get("city")
    null = " AND ".join(f'("{p.name}_l" IS NULL OR "{p.name}_r" IS NULL)' for p in places)
    levels: list[Any] = [
        cll.CustomLevel(null, label_for_charts="address is NULL").configure(is_null_level=True)
    ]
    if street and postcode:
        levels.append(
            cll.And(cll.ExactMatchLevel(street), cll.ExactMatchLevel(postcode)).configure(
                label_for_charts="street and postcode equal"
            )
        )
        levels.append(
            cll.And(cll.JaroWinklerLevel(street, 0.88), cll.ExactMatchLevel(postcode)).configure(
                label_for_charts="street similar, postcode equal"
            )
        )
    if postcode:
        levels.append(cll.ExactMatchLevel(postcode).configure(label_for_charts="postcode equal"))
    if street and city:
        levels.append(
            cll.And(cll.JaroWinklerLevel(street, 0.88), cll.ExactMatchLevel(city)).configure(
                label_for_charts="street similar, city equal"
            )
        )
    if city:
        levels.append(cll.ExactMatchLevel(city).configure(label_for_charts="city equal"))
    levels.append(cll.ElseLevel())
    return cl.CustomComparison(
        comparison_levels=levels, output_column_name=name, comparison_description="address"
    )


def settings(spec: MatchSpec) -> SettingsCreator:
    return SettingsCreator(
        link_type="dedupe_only",
        comparisons=[c.creator for c in comparisons(spec)],
        blocking_rules_to_generate_predictions=[block_on(*rule) for rule in spec.blocking],
        retain_matching_columns=True,  # for gamma_<name>: the level each comparison reached
        retain_intermediate_calculation_columns=True,
        additional_columns_to_retain=[],
    )


@dataclass(frozen=True)
class Trained:
    model: dict[str, Any]  # Splink's JSON
    how: str
    notes: tuple[str, ...] = ()  # what could not be estimated


def train(con: duckdb.DuckDBPyConnection, spec: MatchSpec, *, labels: bool) -> Trained:
    """Estimate the model over the table ``records`` (see the module docstring). An EM session
    that cannot estimate a level (too few pairs: Splink's m underflows) is left out and the
    training starts again without it."""
    if labels:
        linker = _linker(con, settings(spec))
        linker.training.estimate_u_using_random_sampling(max_pairs=U_PAIRS, seed=SEED)
        linker.training.estimate_m_from_label_column("label")
        model: dict[str, Any] = linker.misc.save_model_to_json()
        model["probability_two_random_records_match"] = _labelled_prior(con)
        _floor(model)
        return Trained(model, f"labels (column {spec.label!r})")
    rules = list(spec.blocking)
    skipped: list[str] = []
    while True:
        linker = _linker(con, settings(spec))
        strict = _strict_rule(spec)
        if strict:
            linker.training.estimate_probability_two_random_records_match(
                [block_on(*strict)], recall=RECALL
            )
        linker.training.estimate_u_using_random_sampling(max_pairs=U_PAIRS, seed=SEED)
        failed = None
        for rule in rules[:EM_RULES]:
            try:
                linker.training.estimate_parameters_using_expectation_maximisation(
                    block_on(*rule), estimate_without_term_frequencies=True
                )
            except ValueError as e:  # a level's m underflowed to 0: too few pairs to tell
                failed = rule
                skipped.append(f"EM blocked on {', '.join(rule)} left out: {e}")
                break
        if failed is None:
            break
        rules.remove(failed)
        if not rules:
            raise InputError(
                "expectation maximisation found too few pairs to estimate the model ("
                + "; ".join(skipped)
                + "): give more records, other blocking rules, or a label column"
            )
    model = linker.misc.save_model_to_json()
    _floor(model)
    skipped += [
        f"m of some levels of {name} not estimated (not seen in the EM sessions, or every "
        "session blocked on it): Splink's defaults stand in"
        for name in untrained(model)
    ]
    used = "; ".join(", ".join(rule) for rule in rules[:EM_RULES])
    return Trained(model, f"expectation maximisation (blocked on {used})", tuple(skipped))


def _floor(model: dict[str, Any]) -> None:
    """A level EM saw never among matches (or non-matches) gets m (or u) 0: Splink cannot load
    that back, and it would weigh infinitely. It weighs as a level seen once in a billion."""
    for comparison in model["comparisons"]:
        for level in comparison["comparison_levels"]:
            for key in ("m_probability", "u_probability"):
                value = level.get(key)
                if isinstance(value, int | float) and value < MIN_PROBABILITY:
                    level[key] = MIN_PROBABILITY


def _linker(con: duckdb.DuckDBPyConnection, config: SettingsCreator | dict[str, Any]) -> Linker:
    api = DuckDBAPI(connection=con)
    return Linker(api.register("records"), config, log_level=None)


def _strict_rule(spec: MatchSpec) -> tuple[str, ...]:
    """Columns on which two records agreeing are nearly surely one person: the names with the
    date of birth (or with an email or a phone); empty when the section has none of those."""
    names = tuple(c.name for c in spec.compared if c.kind == "name")
    strong = [c.name for c in spec.compared if c.kind in ("dob", "email", "phone")]
    if names and strong:
        return (*names, strong[0])
    return ()


def _labelled_prior(con: duckdb.DuckDBPyConnection) -> float:
    """The share of pairs of labelled records that are one person, as the labels say."""
    same, labelled = con.execute(
        "SELECT sum(n * (n - 1) / 2), sum(n) FROM (SELECT count(*) AS n FROM records "
        "WHERE label IS NOT NULL GROUP BY label)"
    ).fetchall()[0]
    same, labelled = float(same or 0), int(labelled or 0)
    pairs = labelled * (labelled - 1) / 2
    return min(max(same / pairs, 1e-9), 0.5) if pairs else 1e-4


@dataclass(frozen=True)
class Level:
    label: str
    weight: float  # log2(m/u)


def levels(model: dict[str, Any]) -> list[dict[int, Level]]:
    """Each comparison's levels by comparison vector value (Splink's gamma: -1 the null level,
    then n-1 down to 0 in order), with their match weights (a null level weighs 0)."""
    found = []
    for comparison in model["comparisons"]:
        listed = comparison["comparison_levels"]
        value = sum(1 for level in listed if not level.get("is_null_level"))
        row = {}
        for level in listed:
            m, u = level.get("m_probability"), level.get("u_probability")
            weight = 0.0 if level.get("is_null_level") or not m or not u else math.log2(m / u)
            if level.get("is_null_level"):
                row[-1] = Level(level["label_for_charts"], weight)
            else:
                value -= 1
                row[value] = Level(level["label_for_charts"], weight)
        found.append(row)
    return found


def untrained(model: dict[str, Any]) -> list[str]:
    """The comparisons whose m no training estimated (Splink's defaults stand in)."""
    return [
        comparison["output_column_name"]
        for comparison in model["comparisons"]
        if any(
            level.get("m_probability") is None
            for level in comparison["comparison_levels"]
            if not level.get("is_null_level")
        )
    ]


def prior_weight(model: dict[str, Any]) -> float:
    p = float(model["probability_two_random_records_match"])
    return math.log2(p / (1 - p))


@dataclass(frozen=True)
class Pair:
    left: int  # unique_id
    right: int
    probability: float
    levels: tuple[str, ...]  # per comparison: the level reached (with a term-frequency note)
    weights: tuple[float, ...]  # per comparison: its match weight, term frequency included


def predict(
    con: duckdb.DuckDBPyConnection, spec: MatchSpec, model: dict[str, Any], threshold: float
) -> Iterator[Pair]:
    """The pairs scored at ``threshold`` or above, with each comparison's level and weight."""
    linker = _linker(con, model)
    scored = linker.inference.predict(threshold_match_probability=threshold)
    table = scored.physical_name
    names = [c.name for c in comparisons(spec)]
    present = {row[0] for row in con.execute(f"DESCRIBE {table}").fetchall()}
    weight_columns = []
    for name in names:
        weight_columns.append(f'"gamma_{name}"')
        weight_columns.append(f'"mw_{name}"')
        tf_column = f"mw_tf_adj_{name}"
        weight_columns.append(f'"{tf_column}"' if tf_column in present else "0.0")
    by_level = levels(model)
    cursor = con.cursor().execute(
        f"SELECT unique_id_l, unique_id_r, match_probability, {', '.join(weight_columns)} "
        f"FROM {table}"
    )
    while rows := cursor.fetchmany(10_000):
        for row in rows:
            steps: list[float] = []
            labels: list[str] = []
            for k, options in enumerate(by_level):
                gamma, weight, tf = row[3 + 3 * k], row[4 + 3 * k] or 0.0, row[5 + 3 * k] or 0.0
                label = options[int(gamma)].label
                labels.append(label + (f" (term frequency {tf:+.2f})" if tf else ""))
                steps.append(round(float(weight) + float(tf), 4))
            yield Pair(int(row[0]), int(row[1]), float(row[2]), tuple(labels), tuple(steps))
    scored.drop_table_from_database_and_remove_from_cache()


def dumps(model: dict[str, Any]) -> str:
    return json.dumps(model, sort_keys=True)
