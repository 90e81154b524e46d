"""Record matching in the graph: trained models, matched links and the review queue.

- ``(:MatchModel {source, version, fingerprint, model, trained_at, records, how})``: one per
  training, versioned per source; ``model`` is Splink's JSON (parameters only, no record).
- A matched pair above the merge threshold is a ``LINKED`` relationship (smaller key to larger,
  as loads write them) with ``matched: true`` and its score: ``match_p``, ``match_prior`` (the
  prior's match weight), ``match_comparisons``, ``match_levels``, ``match_weights`` (one entry
  per comparison), ``match_source``, ``match_model``, ``match_at``. A link that matching
  creates has ``count: 0`` (never observed), party ``first`` and the source as its source.
- A pair in the review band is a ``(:MatchReview {id, source, status, ...score})`` with two
  ``-[:PAIR]->`` relationships to its identifiers: it holds no identifier value, so an erasure
  (which deletes the identifier) leaves nothing behind; a review with fewer than two pairs is
  not listed and is removed by the next run.

Every write marks the identifiers whose links changed as touched by a completed
``(:Batch {kind: 'match'})``, so the next incremental resolve picks them up.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, LiteralString

from identity.store.driver import Graph
from identity.store.steward import Audit, record_change

_CHUNK = 5_000


@dataclass(frozen=True)
class Score:
    """One scored pair, ``a`` < ``b`` (keys)."""

    a: str
    b: str
    probability: float
    prior: float
    comparisons: tuple[str, ...]
    levels: tuple[str, ...]
    weights: tuple[float, ...]

    def params(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "p": self.probability,
            "prior": self.prior,
            "comparisons": list(self.comparisons),
            "levels": list(self.levels),
            "weights": list(self.weights),
        }


@dataclass(frozen=True)
class StoredModel:
    source: str
    version: int
    fingerprint: str
    model: str  # Splink's JSON
    trained_at: int  # epoch ms
    records: int
    how: str  # "expectation maximisation" or "labels (column ...)"


def save_model(graph: Graph, model: StoredModel) -> int:
    """Store a new version of the source's model; its version number."""
    rows = graph.run(
        "save a match model",
        """
        MERGE (s:MatchModels {source: $source})
        ON CREATE SET s.last = 0
        SET s.last = s.last + 1
        CREATE (m:MatchModel {source: $source, version: s.last, fingerprint: $fingerprint,
                              model: $model, trained_at: datetime({epochMillis: $at}),
                              records: $records, how: $how})
        RETURN m.version AS version
        """,
        {
            "source": model.source,
            "fingerprint": model.fingerprint,
            "model": model.model,
            "at": model.trained_at,
            "records": model.records,
            "how": model.how,
        },
    )
    return int(rows[0]["version"])


def latest_model(graph: Graph, source: str) -> StoredModel | None:
    rows = graph.read(
        "read the latest match model",
        """
        MATCH (m:MatchModel {source: $source})
        RETURN m.version AS version, m.fingerprint AS fingerprint, m.model AS model,
               m.trained_at.epochMillis AS at, m.records AS records, m.how AS how
        ORDER BY m.version DESC LIMIT 1
        """,
        {"source": source},
    )
    if not rows:
        return None
    r = rows[0]
    return StoredModel(
        source,
        int(r["version"]),
        r["fingerprint"],
        r["model"],
        int(r["at"]),
        r["records"],
        r["how"],
    )


def models(graph: Graph) -> list[StoredModel]:
    """Every stored model, newest first per source, without their JSON."""
    rows = graph.read(
        "list match models",
        """
        MATCH (m:MatchModel)
        RETURN m.source AS source, m.version AS version, m.fingerprint AS fingerprint,
               m.trained_at.epochMillis AS at, m.records AS records, m.how AS how
        ORDER BY m.source, m.version DESC
        """,
    )
    return [
        StoredModel(
            r["source"], r["version"], r["fingerprint"], "", r["at"], r["records"], r["how"]
        )
        for r in rows
    ]


def known_keys(graph: Graph, keys: Sequence[str]) -> set[str]:
    """Which of ``keys`` are identifiers in the graph."""
    found: set[str] = set()
    for start in range(0, len(keys), 50_000):
        found.update(
            graph.read_collected(
                "find record identifiers",
                "UNWIND $keys AS k MATCH (i:Identifier {key: k}) RETURN collect(k)",
                {"keys": list(keys[start : start + 50_000])},
            )
        )
    return found


def matched_pairs(graph: Graph, source: str) -> dict[tuple[str, str], str]:
    """The links ``source``'s matching wrote, by pair of keys: ``cut`` or ``forced`` when a
    steward decided (kept whatever a new run says), else ``matched``."""
    rows = graph.read_collected(
        "read matched links",
        """
        MATCH (x:Identifier)-[r:LINKED]->(y:Identifier)
        WHERE r.match_source = $source
        RETURN collect([x.key, y.key, CASE WHEN r.cut THEN 'cut' WHEN r.forced THEN 'forced'
                                           ELSE 'matched' END])
        """,
        {"source": source},
    )
    return {(a, b): state for a, b, state in rows}


# a link that does not exist yet goes from the smaller key to the larger, as loads write them
# (one relationship per pair: an existing one is found in either direction)
_LINKS: LiteralString = """
    UNWIND $scores AS s
    MATCH (x:Identifier {key: s.a}), (y:Identifier {key: s.b})
    OPTIONAL MATCH (x)-[old:LINKED]-(y)
    WITH x, y, s, count(old) AS found
    FOREACH (_ IN CASE WHEN found = 0 THEN [1] ELSE [] END |
      CREATE (x)-[:LINKED {party: $party, sources: [$source], count: 0, evidence: [],
                           first_seen: datetime({epochMillis: $at}),
                           last_seen: datetime({epochMillis: $at})}]->(y))
    WITH x, y, s
    MATCH (x)-[r:LINKED]-(y)
    SET r.matched = true, r.match_p = s.p, r.match_prior = s.prior,
        r.match_comparisons = s.comparisons, r.match_levels = s.levels,
        r.match_weights = s.weights, r.match_source = $source, r.match_model = $model,
        r.match_at = datetime({epochMillis: $at}),
        r.last_seen = CASE WHEN r.count = 0 THEN datetime({epochMillis: $at})
                      ELSE r.last_seen END
    FOREACH (_ IN CASE WHEN s.new THEN [1] ELSE [] END |
      SET x.batch = $batch, x.touched = $batch, y.batch = $batch, y.touched = $batch)
"""
# a matched link that the new run no longer scores above the threshold: its score goes; a
# link only matching made goes entirely, unless a steward cut or forced it (a decision kept)
_RETRACT: LiteralString = """
    UNWIND $pairs AS pair
    MATCH (x:Identifier {key: pair[0]})-[r:LINKED]->(y:Identifier {key: pair[1]})
    WHERE r.match_source = $source AND NOT coalesce(r.cut, false)
      AND NOT coalesce(r.forced, false)
    SET x.batch = $batch, x.touched = $batch, y.batch = $batch, y.touched = $batch
    WITH r, r.count = 0 AS only
    FOREACH (_ IN CASE WHEN only THEN [] ELSE [1] END |
      REMOVE r.matched, r.match_p, r.match_prior, r.match_comparisons, r.match_levels,
             r.match_weights, r.match_source, r.match_model, r.match_at)
    FOREACH (_ IN CASE WHEN only THEN [1] ELSE [] END | DELETE r)
"""
_NEIGHBOURS: LiteralString = """
    UNWIND $keys AS k
    MATCH (:Identifier {key: k})-[:LINKED]-(o:Identifier)
    SET o.batch = $batch, o.touched = $batch
"""
# reviews keep their id from run to run (a steward paging or deciding meanwhile is not lost)
_REVIEWS: LiteralString = """
    UNWIND $scores AS s
    MATCH (x:Identifier {key: s.a}), (y:Identifier {key: s.b})
    MERGE (v:MatchReview {id: s.id})
    ON CREATE SET v.source = $source, v.party = $party, v.status = 'open',
                  v.created_at = datetime({epochMillis: $at})
    WITH v, x, y, s WHERE v.status = 'open'
    SET v.model = $model, v.p = s.p, v.prior = s.prior, v.comparisons = s.comparisons,
        v.levels = s.levels, v.weights = s.weights
    MERGE (v)-[:PAIR]->(x)
    MERGE (v)-[:PAIR]->(y)
"""


def review_id(source: str, a: str, b: str) -> str:
    """A review's id: the same pair of a source is the same review from run to run."""
    return hashlib.sha256(f"{source}\x00{a}\x00{b}".encode()).hexdigest()[:32]


@dataclass
class Written:
    links: int = 0
    retracted: int = 0
    reviews: int = 0


def write_matches(
    graph: Graph,
    *,
    source: str,
    party: str,
    model: int,
    links: Sequence[Score],
    new: set[tuple[str, str]],
    retract: Sequence[tuple[str, str]],
    reviews: Sequence[Score],
    batch: str,
    at: int,
) -> Written:
    """Write a run's matched links (``new`` pairs, and the ends' neighbours, marked touched),
    retract the source's earlier ones no longer above the threshold, and replace its open
    reviews; under one ``(:Batch {kind: 'match'})``, completed even when a write fails so that
    the next resolve applies what was written."""
    base = {"source": source, "party": party, "model": model, "batch": batch, "at": at}
    graph.run(
        "open a match batch",
        """
        MERGE (s:Source {name: $source})
        ON CREATE SET s.party = $party, s.created_at = datetime({epochMillis: $at})
        CREATE (b:Batch {id: $batch, source: $source, party: $party, kind: 'match',
                         status: 'running', read: 0, accepted: 0, rejected: 0,
                         started_at: datetime({epochMillis: $at})})-[:FROM]->(s)
        """,
        base,
    )
    done = Written()
    try:
        clear_orphan_reviews(graph)
        for start in range(0, len(retract), _CHUNK):
            block = [list(p) for p in retract[start : start + _CHUNK]]
            graph.run("retract matched links", _RETRACT, {**base, "pairs": block})
            done.retracted += len(block)
        for start in range(0, len(links), _CHUNK):
            rows = [{**s.params(), "new": (s.a, s.b) in new} for s in links[start : start + _CHUNK]]
            graph.run("write matched links", _LINKS, {**base, "scores": rows})
            done.links += len(rows)
        # a new cluster of duplicates changes how the ends' neighbours count them (an email of
        # both records is no longer two customers'): they are resolved again too
        ends = sorted({k for pair in [*new, *retract] for k in pair})
        for start in range(0, len(ends), _CHUNK):
            graph.run("touch the neighbours of matched records", _NEIGHBOURS,
                      {**base, "keys": ends[start : start + _CHUNK]})  # fmt: skip
        keep = [review_id(source, s.a, s.b) for s in reviews]
        graph.run(
            "remove open match reviews no longer in the band",
            """
            MATCH (v:MatchReview {source: $source, status: 'open'}) WHERE NOT v.id IN $keep
            DETACH DELETE v
            """,
            {**base, "keep": keep},
        )
        for start in range(0, len(reviews), _CHUNK):
            rows = [
                {**s.params(), "id": review_id(source, s.a, s.b)}
                for s in reviews[start : start + _CHUNK]
            ]
            graph.run("queue matches for review", _REVIEWS, {**base, "scores": rows})
            done.reviews += len(rows)
    finally:
        graph.run(
            "close the match batch",
            """
            MATCH (b:Batch {id: $batch})
            SET b.status = 'completed', b.accepted = $accepted,
                b.finished_at = datetime({epochMillis: $at})
            """,
            {**base, "accepted": done.links},
        )
    return done


@dataclass(frozen=True)
class ReviewRow:
    id: str
    source: str
    model: int
    a: str
    b: str
    score: Score
    status: str
    created_at: int
    decided_by: str | None = None
    reason: str | None = None


_REVIEW_COLUMNS: LiteralString = """
    [v.id, v.source, v.model, keys[0], keys[1], v.p, v.prior, v.comparisons, v.levels,
     v.weights, v.status, v.created_at.epochMillis, v.decided_by, v.reason]
"""


def _review(row: list[Any]) -> ReviewRow:
    id_, source, model, a, b, p, prior, comparisons, levels, weights, status, at, by, why = row
    score = Score(a, b, p, prior, tuple(comparisons), tuple(levels), tuple(weights))
    return ReviewRow(id_, source, model, a, b, score, status, at, by, why)


def reviews(
    graph: Graph, *, source: str | None, status: str, first: int, after: str | None
) -> list[ReviewRow]:
    """Reviews of ``status`` (of ``source``, or all), most probable first, then by id; a
    page of ``first`` after the review ``after``."""
    rows = graph.read_collected(
        "read match reviews",
        """
        OPTIONAL MATCH (c:MatchReview {id: $after})
        WITH c
        MATCH (v:MatchReview {status: $status})
        WHERE ($source IS NULL OR v.source = $source)
          AND (c IS NULL OR v.p < c.p OR (v.p = c.p AND v.id > c.id))
        WITH v, COLLECT { MATCH (v)-[:PAIR]->(i:Identifier) RETURN i.key ORDER BY i.key } AS keys
        WHERE size(keys) = 2
        WITH v, keys ORDER BY v.p DESC, v.id LIMIT $first
        RETURN collect("""
        + _REVIEW_COLUMNS
        + """)
        """,
        {"source": source, "status": status, "first": first, "after": after},
    )
    return [_review(r) for r in rows]


def review(graph: Graph, review_id: str) -> ReviewRow | None:
    rows = graph.read_collected(
        "read a match review",
        """
        MATCH (v:MatchReview {id: $id})
        WITH v, COLLECT { MATCH (v)-[:PAIR]->(i:Identifier) RETURN i.key ORDER BY i.key } AS keys
        WHERE size(keys) = 2
        RETURN collect("""
        + _REVIEW_COLUMNS
        + """)
        """,
        {"id": review_id},
    )
    return _review(rows[0]) if rows else None


def _decision(flag: LiteralString) -> LiteralString:
    return (
        """
        MATCH (v:MatchReview {id: $review, status: 'open'})-[:PAIR]->(x:Identifier {key: $a}),
              (v)-[:PAIR]->(y:Identifier {key: $b})
        OPTIONAL MATCH (x)-[old:LINKED]-(y)
        WITH v, x, y, count(old) AS found
        FOREACH (_ IN CASE WHEN found = 0 THEN [1] ELSE [] END |
          CREATE (x)-[:LINKED {party: coalesce(v.party, 'first'), sources: [v.source],
                               count: 0, evidence: [],
                               first_seen: datetime({epochMillis: $at}),
                               last_seen: datetime({epochMillis: $at})}]->(y))
        WITH v, x, y
        MATCH (x)-[r:LINKED]-(y)
        SET r.matched = true, r.match_p = v.p, r.match_prior = v.prior,
            r.match_comparisons = v.comparisons, r.match_levels = v.levels,
            r.match_weights = v.weights, r.match_source = v.source, r.match_model = v.model,
            r.match_at = datetime({epochMillis: $at}),
            v.status = $status, v.decided_by = $actor, v.reason = $reason,
            v.decided_at = datetime({epochMillis: $at})
        """
        + flag
        + """
        RETURN count(r) AS n
        """
    )


_ACCEPT = _decision(
    """
    SET r.forced = true, r.forced_reason = $reason, r.forced_by = $actor,
        r.forced_at = datetime({epochMillis: $at})
    REMOVE r.cut, r.cut_reason, r.cut_by, r.cut_at
    """
)
_REJECT = _decision(
    """
    SET r.cut = true, r.cut_reason = $reason, r.cut_by = $actor,
        r.cut_at = datetime({epochMillis: $at})
    """
)


def decide_review(graph: Graph, row: ReviewRow, *, accept: bool, audit: Audit) -> bool:
    """Accept (a forced matched link) or reject (a cut matched link) an open review, with the
    steward's audit event and batch, in one transaction; False when it is no longer open."""
    params: dict[str, Any] = {
        **audit.params(),
        "review": row.id,
        "a": row.a,
        "b": row.b,
        "status": "accepted" if accept else "rejected",
        "action": "accept_match" if accept else "reject_match",
        "keys": [row.a, row.b],
        "selected": None,
        "neighbours": True,  # as for a new matched link: see write_matches
    }
    return record_change(graph, _ACCEPT if accept else _REJECT, params, changes=1)


def clear_orphan_reviews(graph: Graph) -> None:
    """Reviews that lost an identifier (erased, expired) go."""
    graph.run(
        "remove orphan match reviews",
        """
        MATCH (v:MatchReview)
        WHERE COUNT { (v)-[:PAIR]->() } < 2
        DETACH DELETE v
        """,
    )
