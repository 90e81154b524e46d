"""Record matching: train a model over a table's records, then write what it finds.

``train`` reads the table through its mapping's ``[match]`` section and stores a new version
of the source's model (its fingerprint names the comparisons and blocking rules it was
trained for). ``run`` scores the pairs the blocking rules produce with the latest model and,
under the policy's ``[matching]`` thresholds, writes a matched link between the two records'
identifiers (probability >= ``merge``), queues the pair for a steward (``review`` <= p <
``merge``) or drops it. A run replaces the source's previous one: links it no longer scores
above ``merge`` are retracted, except those a steward cut or forced. Then an incremental
resolve applies the links, under every guard (docs/matching.md).
"""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from identity.context import ServiceContext
from identity.errors import InputError, NotFoundError
from identity.matching import model as fs
from identity.matching.records import Records, read_records
from identity.model import Rejection
from identity.resolve.service import ResolveReport, resolve_identities
from identity.store import matching as store
from loaders.match_spec import MatchSpec
from loaders.table import TableMapping

DRY_RUN_SAMPLE = 20


@dataclass
class TrainReport:
    source: str
    version: int
    fingerprint: str
    how: str
    records: int
    rows: int
    rejected: list[Rejection]
    seconds: float
    notes: tuple[str, ...] = ()  # what training left out, and why


@dataclass
class RunReport:
    source: str
    version: int
    records: int
    rows: int
    rejected: list[Rejection]
    scored: int = 0  # pairs at or above the review threshold
    links: int = 0  # at or above the merge threshold: matched links
    new: int = 0  # of which not matched before
    reviews: int = 0  # in the band: queued for a steward
    decided: int = 0  # decided by a steward before: neither rewritten nor queued again
    retracted: int = 0  # earlier matched links no longer above the merge threshold
    not_loaded: int = 0  # pairs with a record whose identifier is not in the graph
    dry_run: bool = False
    sample: list[store.Score] = field(default_factory=list)  # the dry run's most probable
    resolve: ResolveReport | None = None
    seconds: float = 0.0


def _connect(directory: str, ctx: ServiceContext) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(Path(directory) / "match.duckdb"))
    con.execute(f"SET memory_limit = '{int(ctx.settings.match_memory_mb)}MB'")
    quoted = directory.replace("'", "''")
    con.execute(f"SET temp_directory = '{quoted}'")
    return con


def train(
    ctx: ServiceContext, path: Path, mapping: TableMapping, *, labels: bool | None = None
) -> TrainReport:
    """Estimate and store a model for ``mapping``'s source; from labels when the section names
    a label column (unless ``labels`` is False), else by expectation maximisation."""
    spec = _spec(mapping)
    use_labels = bool(spec.label) if labels is None else labels
    if use_labels and not spec.label:
        raise InputError(f"source {mapping.source!r}: [match] names no label column to train from")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="idgraph-match-") as directory:
        con = _connect(directory, ctx)
        try:
            records = read_records(con, path, mapping, ctx.normalizer)
            _enough(records, mapping.source)
            trained = fs.train(con, spec, labels=use_labels)
        finally:
            con.close()
    stored = store.StoredModel(
        source=mapping.source,
        version=0,
        fingerprint=spec.fingerprint(),
        model=fs.dumps(trained.model),
        trained_at=int(time.time() * 1000),
        records=records.count,
        how=trained.how,
    )
    version = store.save_model(ctx.graph, stored)
    return TrainReport(
        mapping.source,
        version,
        stored.fingerprint,
        trained.how,
        records.count,
        records.rows,
        records.rejected,
        time.monotonic() - started,
        trained.notes,
    )


def run(
    ctx: ServiceContext,
    path: Path,
    mapping: TableMapping,
    *,
    dry_run: bool = False,
    resolve: bool = True,
    wait: float = 30.0,
) -> RunReport:
    """Score ``path``'s records with the source's latest model and write what the policy's
    thresholds say (see the module docstring); ``dry_run`` writes nothing."""
    spec = _spec(mapping)
    stored = store.latest_model(ctx.graph, mapping.source)
    if stored is None:
        raise NotFoundError(
            f"no match model for source {mapping.source!r}: run `idgraph match train` first"
        )
    if stored.fingerprint != spec.fingerprint():
        raise InputError(
            f"the model of source {mapping.source!r} (version {stored.version}) was trained for "
            f"other comparisons or blocking rules (fingerprint {stored.fingerprint}, the "
            f"mapping's is {spec.fingerprint()}): run `idgraph match train` again"
        )
    thresholds = ctx.policy.matching
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="idgraph-match-") as directory:
        con = _connect(directory, ctx)
        try:
            records = read_records(con, path, mapping, ctx.normalizer)
            report = RunReport(
                mapping.source, stored.version, records.count, records.rows, records.rejected
            )
            links, band = _scored(con, spec, stored, records, thresholds.review, thresholds.merge)
        finally:
            con.close()
    report.scored = len(links) + len(band)
    known = store.known_keys(ctx.graph, sorted({k for s in [*links, *band] for k in (s.a, s.b)}))
    loaded = [s for s in links if s.a in known and s.b in known]
    in_band = [s for s in band if s.a in known and s.b in known]
    report.not_loaded = report.scored - len(loaded) - len(in_band)
    before = store.matched_pairs(ctx.graph, mapping.source)
    scored = {(s.a, s.b) for s in loaded}
    retract = [p for p, state in before.items() if state == "matched" and p not in scored]
    # a steward's decision stays: its link is neither rewritten nor queued again
    undecided = [s for s in loaded if before.get((s.a, s.b)) not in ("cut", "forced")]
    new = {(s.a, s.b) for s in undecided if (s.a, s.b) not in before}
    queued = [s for s in in_band if before.get((s.a, s.b)) not in ("cut", "forced")]
    report.decided = len(in_band) - len(queued) + len(loaded) - len(undecided)
    report.dry_run = dry_run
    report.new = len(new)
    if dry_run:
        report.links, report.reviews, report.retracted = len(undecided), len(queued), len(retract)
        report.sample = sorted(undecided + queued, key=lambda s: -s.probability)[:DRY_RUN_SAMPLE]
        report.seconds = time.monotonic() - started
        return report
    written = store.write_matches(
        ctx.graph,
        source=mapping.source,
        party=mapping.party,
        model=stored.version,
        links=undecided,
        new=new,
        retract=retract,
        reviews=queued,
        batch=f"match-{uuid.uuid4()}",
        at=int(time.time() * 1000),
    )
    report.links, report.reviews, report.retracted = (
        written.links,
        written.reviews,
        written.retracted,
    )
    if resolve:
        report.resolve = resolve_identities(ctx, wait=wait)
    report.seconds = time.monotonic() - started
    return report


def _scored(
    con: duckdb.DuckDBPyConnection,
    spec: MatchSpec,
    stored: store.StoredModel,
    records: Records,
    review: float,
    merge: float,
) -> tuple[list[store.Score], list[store.Score]]:
    model = json.loads(stored.model)
    prior = fs.prior_weight(model)
    comparisons = tuple(c.shown for c in fs.comparisons(spec))
    links: list[store.Score] = []
    band: list[store.Score] = []
    for pair in fs.predict(con, spec, model, review):
        a, b = sorted((records.keys[pair.left], records.keys[pair.right]))
        score = store.Score(
            a, b, pair.probability, round(prior, 4), comparisons, pair.levels, pair.weights
        )
        (links if pair.probability >= merge else band).append(score)
    return links, band


def _spec(mapping: TableMapping) -> MatchSpec:
    if mapping.party == "third":
        raise InputError(
            f"source {mapping.source!r} is third-party: its records enrich identities but never "
            "merge them, so record matching does not join them"
        )
    if mapping.match is None:
        raise InputError(
            f"the mapping of source {mapping.source!r} has no [match] section: see "
            "docs/matching.md for the columns to compare"
        )
    return mapping.match


def _enough(records: Records, source: str) -> None:
    if records.count < 2:
        raise InputError(
            f"source {source!r}: {records.count} record(s) to compare after "
            f"{records.rejected_count} rejected: a model needs many more"
        )
