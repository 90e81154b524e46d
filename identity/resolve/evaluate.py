"""How good the identities are, against ``idgraph synth``'s ground truth.

Pairwise scores, the usual measure for entity resolution (Christen, "Data Matching",
Springer 2012, ch. 7): over the identifiers the truth assigns to a person, a *predicted pair*
is two identifiers in one identity, a *true pair* two identifiers of one person. Precision =
correct predicted pairs / predicted pairs; recall = correct predicted pairs / true pairs.
Counted per (identity, person) cell, never pair by pair: O(identifiers).

Trap identifiers (truth person ``shared`` or ``junk``: the kiosk cookie, a family tablet)
belong to nobody, so they are left out of the pairs; an identity that holds one with a
person's identifiers is counted apart (``traps_attached``).

Three partitions are scored side by side:

- **identities**: the stored identities, as ``idgraph resolve`` left them;
- **no guards**: plain connected components over every link, any party (what a naive
  stitcher gives);
- **ceiling**: components over the links whose two ends belong to the same person and that
  the policy lets merge at all (party and sources, TTL as of the last resolve, not cut, not
  blocked). No rule can put together two identifiers that no such path joins, so its recall
  is the most the observed links allow under the policy; the gap between it and the
  identities' recall is what the over-merge guards cost. Its precision is 1 by construction.
"""

from __future__ import annotations

import csv
import dataclasses
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from identity.context import ServiceContext
from identity.errors import InputError
from identity.normalize import sha256_hex
from identity.resolve.components import connected_components
from identity.resolve.engine import DEVICE, LIMIT, MERGED, QUARANTINED, SHARED, resolve
from identity.resolve.snapshot import read_full
from identity.store.identities import device_review_keys, stream_identities
from identity.store.runs import last_completed_run

TRAPS = frozenset({"shared", "junk"})


@dataclass(frozen=True)
class Scores:
    precision: float
    recall: float
    f1: float
    predicted_pairs: int
    true_pairs: int
    correct_pairs: int
    identities: int
    over_merged: int  # identities holding identifiers of two or more people
    largest: int
    traps_attached: int  # identities holding a trap identifier and someone's identifiers


@dataclass(frozen=True)
class CaseScore:
    """How the people of one hard case (``cases.csv``) fared in the stored identities."""

    case: str
    people: int
    over_merged: int  # in an identity holding another person's identifiers
    emails_together: int | None  # all their emails in one identity (None: one email each)
    in_review: int  # one of their emails named by an open device review


@dataclass(frozen=True)
class Evaluation:
    identities: Scores
    no_guards: Scores
    ceiling: Scores
    people: int
    identifiers: int  # scored (in the truth and the graph)
    cases: list[CaseScore] = field(default_factory=list)
    # the same graph resolved without the links record matching wrote (None: it wrote none)
    without_matching: Scores | None = None


def read_truth(path: Path, *, hash_pii: bool = False) -> dict[str, str]:
    """``type:value`` -> person from a truth CSV (``type,value,person``)."""
    hashed = {"email", "phone"} if hash_pii else set()
    truth: dict[str, str] = {}
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = csv.DictReader(f)
            if rows.fieldnames is None or not {"type", "value", "person"} <= set(rows.fieldnames):
                raise InputError(f"{path}: expected the columns type,value,person")
            for row in rows:
                value = sha256_hex(row["value"]) if row["type"] in hashed else row["value"]
                truth[f"{row['type']}:{value}"] = row["person"]
    except OSError as e:
        raise InputError(f"cannot read the truth file {path}: {e}") from e
    return truth


def score(groups: Iterable[Iterable[str]], truth: Mapping[str, str]) -> Scores:
    """Pairwise scores of ``groups`` (identities as identifier keys) against ``truth``."""
    cells: Counter[tuple[int, str]] = Counter()
    per_person: Counter[str] = Counter()
    predicted = over = largest = traps = n_groups = 0
    for gi, group in enumerate(groups):
        n_groups += 1
        people: Counter[str] = Counter()
        size = 0
        has_trap = False
        for key in group:
            size += 1
            person = truth.get(key)
            if person is None:
                continue
            if person in TRAPS:
                has_trap = True
                continue
            people[person] += 1
        largest = max(largest, size)
        n = sum(people.values())
        predicted += n * (n - 1) // 2
        over += len(people) > 1
        traps += has_trap and bool(people)
        for person, count in people.items():
            cells[gi, person] = count
            per_person[person] += count
    correct = sum(c * (c - 1) // 2 for c in cells.values())
    true_pairs = sum(c * (c - 1) // 2 for c in per_person.values())
    precision = correct / predicted if predicted else 1.0
    recall = correct / true_pairs if true_pairs else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Scores(
        precision=precision,
        recall=recall,
        f1=f1,
        predicted_pairs=predicted,
        true_pairs=true_pairs,
        correct_pairs=correct,
        identities=n_groups,
        over_merged=over,
        largest=largest,
        traps_attached=traps,
    )


def evaluate(ctx: ServiceContext, truth_path: Path) -> Evaluation:
    """Score the stored identities, plain components and the ceiling against the truth."""
    graph, policy = ctx.graph, ctx.policy
    truth = read_truth(truth_path, hash_pii=ctx.settings.hash_pii)
    identities = [
        [f"{type_}:{value}" for type_, value in members] for _, members in stream_identities(graph)
    ]
    snapshot = read_full(graph, policy, ctx.normalizer)
    g = snapshot.graph
    keys = g.keys
    pairs = zip(g.a.tolist(), g.b.tolist(), strict=True)
    no_guards = connected_components(((keys[a], keys[b]) for a, b in pairs), keys)
    person = [truth.get(key) for key in keys]
    same = np.array(
        [
            person[a] is not None and person[a] not in TRAPS and person[a] == person[b]
            for a, b in zip(g.a.tolist(), g.b.tolist(), strict=True)
        ],
        dtype=np.bool_,
    )
    last = last_completed_run(graph)
    as_of = int(last["as_of"]) if last else int(time.time() * 1000)
    verdict = resolve(g, policy, as_of).verdict
    # all but party, TTL and cut
    allowed = np.isin(verdict, (MERGED, SHARED, LIMIT, QUARANTINED, DEVICE))
    own = np.flatnonzero(same & allowed)
    ceiling = connected_components(
        ((keys[int(g.a[j])], keys[int(g.b[j])]) for j in own.tolist()), keys
    )
    without_matching = None
    only_matched = g.matched & (g.count == 0)
    if only_matched.any():
        unmatched = resolve(dataclasses.replace(g, cut=g.cut | only_matched), policy, as_of)
        without_matching = score(unmatched.partition(), truth)
    scored = sum(1 for p in person if p is not None and p not in TRAPS)
    cases_path = truth_path.parent / "cases.csv"
    cases = (
        score_cases(identities, truth, read_cases(cases_path), device_review_keys(graph))
        if cases_path.is_file()
        else []
    )
    return Evaluation(
        identities=score(identities, truth),
        no_guards=score(no_guards, truth),
        ceiling=score(ceiling, truth),
        people=len({p for p in person if p is not None and p not in TRAPS}),
        identifiers=scored,
        cases=cases,
        without_matching=without_matching,
    )


def read_cases(path: Path) -> dict[str, str]:
    """person -> case from ``cases.csv`` (``person,case``), written by ``idgraph synth``."""
    try:
        with path.open(newline="", encoding="utf-8") as f:
            return {row["person"]: row["case"] for row in csv.DictReader(f)}
    except (OSError, KeyError) as e:
        raise InputError(f"cannot read the cases file {path}: {e}") from e


def score_cases(
    groups: list[list[str]],
    truth: Mapping[str, str],
    cases: Mapping[str, str],
    reviewed: set[str],
) -> list[CaseScore]:
    """Per case: its people, how many are over-merged, have their emails together, are named
    by an open device review."""
    people_of: list[set[str]] = []
    group_of: dict[str, int] = {}
    for gi, group in enumerate(groups):
        people_of.append({p for k in group if (p := truth.get(k)) and p not in TRAPS})
        for key in group:
            group_of[key] = gi
    emails: dict[str, list[str]] = {}
    for key, person in truth.items():
        if person in cases and key.startswith("email:"):
            emails.setdefault(person, []).append(key)
    found: dict[str, list[int]] = {}
    for person, case in cases.items():
        own = emails.get(person, [])
        held = {group_of[k] for k in own if k in group_of}
        counts = found.setdefault(case, [0, 0, 0, 0, 0])
        counts[0] += 1
        counts[1] += any(len(people_of[g]) > 1 for g in held)
        counts[2] += len(held) == 1
        counts[3] += any(k in reviewed for k in own)
        counts[4] += len(own) > 1
    return [
        CaseScore(case, people, over, together if several else None, review)
        for case, (people, over, together, review, several) in sorted(found.items())
    ]
