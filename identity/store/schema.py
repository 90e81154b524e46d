"""The graph schema: constraints and indexes, applied as ordered, versioned migrations.

The version lives on one ``(:SchemaVersion {id: 'idgraph'})`` node. ``init_schema`` applies
the migrations above that version in order; each statement is ``IF NOT EXISTS``, so running
it again, or after an interrupted run, changes nothing. A later migration is appended to
``MIGRATIONS`` with the next number, never edited in place once released.

A migration's statements are of two kinds: the schema (constraints and indexes) and the
data brought to the new model (``MATCH ...``). A database written by this version all at once
(``idgraph backfill``'s import) already holds its data in the latest model: it takes the
schema statements only (``data_current``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import LiteralString

from identity.store.driver import Graph


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    statements: tuple[LiteralString, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "identifiers, identities, events, lineage and segments",
        (
            "CREATE CONSTRAINT schema_version_id IF NOT EXISTS "
            "FOR (v:SchemaVersion) REQUIRE v.id IS UNIQUE",
            "CREATE CONSTRAINT identifier_key IF NOT EXISTS "
            "FOR (i:Identifier) REQUIRE i.key IS UNIQUE",
            "CREATE CONSTRAINT identity_id IF NOT EXISTS FOR (p:Identity) REQUIRE p.id IS UNIQUE",
            "CREATE CONSTRAINT identity_event_id IF NOT EXISTS "
            "FOR (e:IdentityEvent) REQUIRE e.id IS UNIQUE",
            "CREATE CONSTRAINT source_name IF NOT EXISTS FOR (s:Source) REQUIRE s.name IS UNIQUE",
            "CREATE CONSTRAINT batch_id IF NOT EXISTS FOR (b:Batch) REQUIRE b.id IS UNIQUE",
            "CREATE CONSTRAINT segment_id IF NOT EXISTS FOR (s:Segment) REQUIRE s.id IS UNIQUE",
            "CREATE INDEX identifier_type IF NOT EXISTS FOR (i:Identifier) ON (i.type)",
            "CREATE INDEX identifier_last_seen IF NOT EXISTS FOR (i:Identifier) ON (i.last_seen)",
            "CREATE INDEX identity_updated_at IF NOT EXISTS FOR (p:Identity) ON (p.updated_at)",
            "CREATE INDEX identity_event_at IF NOT EXISTS FOR (e:IdentityEvent) ON (e.at)",
            "CREATE INDEX identity_event_kind IF NOT EXISTS FOR (e:IdentityEvent) ON (e.kind)",
            "CREATE INDEX batch_started_at IF NOT EXISTS FOR (b:Batch) ON (b.started_at)",
            "CREATE INDEX batch_sha256 IF NOT EXISTS FOR (b:Batch) ON (b.sha256)",
            "CREATE INDEX linked_last_seen IF NOT EXISTS FOR ()-[l:LINKED]-() ON (l.last_seen)",
        ),
    ),
)

MIGRATIONS += (
    Migration(
        2,
        "loaded observations: Segment message ids, batch chunks, DMP segments",
        (
            "CREATE CONSTRAINT seen_message_id IF NOT EXISTS "
            "FOR (m:SeenMessage) REQUIRE m.id IS UNIQUE",
            "CREATE CONSTRAINT batch_chunk_key IF NOT EXISTS "
            "FOR (c:BatchChunk) REQUIRE c.key IS UNIQUE",
            "CREATE INDEX batch_chunk_batch IF NOT EXISTS FOR (c:BatchChunk) ON (c.batch)",
            "CREATE CONSTRAINT dmp_segment_name IF NOT EXISTS "
            "FOR (s:DmpSegment) REQUIRE s.name IS UNIQUE",
            "CREATE INDEX batch_status IF NOT EXISTS FOR (b:Batch) ON (b.status)",
        ),
    ),
)

MIGRATIONS += (
    Migration(
        3,
        "resolution: touched identifiers, shared flags, runs, the resolve lock, quarantines",
        (
            "CREATE INDEX identifier_batch IF NOT EXISTS FOR (i:Identifier) ON (i.batch)",
            "CREATE INDEX identifier_shared IF NOT EXISTS FOR (i:Identifier) ON (i.shared)",
            "CREATE INDEX identity_status IF NOT EXISTS FOR (p:Identity) ON (p.status)",
            "CREATE CONSTRAINT resolve_run_id IF NOT EXISTS "
            "FOR (r:ResolveRun) REQUIRE r.id IS UNIQUE",
            "CREATE INDEX resolve_run_started_at IF NOT EXISTS "
            "FOR (r:ResolveRun) ON (r.started_at)",
            "CREATE CONSTRAINT resolve_lock_id IF NOT EXISTS "
            "FOR (l:ResolveLock) REQUIRE l.id IS UNIQUE",
            "CREATE CONSTRAINT quarantine_id IF NOT EXISTS "
            "FOR (q:Quarantine) REQUIRE q.id IS UNIQUE",
            "CREATE INDEX batch_resolved_at IF NOT EXISTS FOR (b:Batch) ON (b.resolved_at)",
        ),
    ),
)

MIGRATIONS += (
    Migration(
        4,
        "profiles, segments, audiences and erasure tombstones",
        (
            "CREATE CONSTRAINT profile_state_id IF NOT EXISTS "
            "FOR (s:ProfileState) REQUIRE s.id IS UNIQUE",
            "CREATE CONSTRAINT segment_name IF NOT EXISTS FOR (s:Segment) REQUIRE s.name IS UNIQUE",
            "CREATE INDEX segment_refresh_segment IF NOT EXISTS "
            "FOR (r:SegmentRefresh) ON (r.segment)",
            "CREATE CONSTRAINT audience_id IF NOT EXISTS FOR (a:Audience) REQUIRE a.id IS UNIQUE",
            "CREATE INDEX audience_export_audience IF NOT EXISTS "
            "FOR (e:AudienceExport) ON (e.audience)",
            "CREATE CONSTRAINT tombstone_hash IF NOT EXISTS "
            "FOR (t:Tombstone) REQUIRE t.hash IS UNIQUE",
        ),
    ),
)

MIGRATIONS += (
    Migration(
        5,
        "messageIds deduplicated on identifiers: (:SeenMessage) nodes dropped",
        (
            "DROP CONSTRAINT seen_message_id IF EXISTS",
            "MATCH (m:SeenMessage) CALL (m) { DELETE m } IN TRANSACTIONS OF 10000 ROWS",
        ),
    ),
)

MIGRATIONS += (
    Migration(
        6,
        "touched identifiers: kept by load chunks, indexed as touched for the other writers",
        (
            "CREATE INDEX identifier_touched IF NOT EXISTS FOR (i:Identifier) ON (i.touched)",
            # what loads not yet resolved touched, found through the old index one last time
            "MATCH (b:Batch) WHERE b.status = 'completed' AND b.resolved_at IS NULL "
            "MATCH (i:Identifier {batch: b.id}) "
            "CALL (i, b) { SET i.touched = b.id } IN TRANSACTIONS OF 10000 ROWS",
            "DROP INDEX identifier_batch IF EXISTS",
            # nobody asks for identifiers by type (their label says it)
            "DROP INDEX identifier_type IF EXISTS",
        ),
    ),
)

MIGRATIONS += (
    Migration(
        7,
        "identifiers that say something (traits, events, DMP segments) labelled :Stated",
        (
            "MATCH (i:Identifier) "
            "WHERE any(k IN keys(i) WHERE k STARTS WITH 'trait.' OR k STARTS WITH 'event_count.') "
            "OR EXISTS { (i)-[:IN_SEGMENT]->() } "
            "CALL (i) { SET i:Stated } IN TRANSACTIONS OF 10000 ROWS",
        ),
    ),
)

MIGRATIONS += (
    Migration(
        8,
        "possible shared devices kept for review: (:DeviceReview) ids unique, by status",
        (
            "CREATE CONSTRAINT device_review_id IF NOT EXISTS "
            "FOR (r:DeviceReview) REQUIRE r.id IS UNIQUE",
            "CREATE INDEX device_review_status IF NOT EXISTS FOR (r:DeviceReview) ON (r.status)",
        ),
    ),
)

MIGRATIONS += (
    Migration(
        9,
        "webhooks and the outbox: entries numbered in commit order, deliveries, pages of "
        "segment changes",
        (
            "CREATE CONSTRAINT outbox_sequence_id IF NOT EXISTS "
            "FOR (c:OutboxSequence) REQUIRE c.id IS UNIQUE",
            "CREATE CONSTRAINT webhook_id IF NOT EXISTS FOR (w:Webhook) REQUIRE w.id IS UNIQUE",
            "CREATE CONSTRAINT delivery_id IF NOT EXISTS FOR (d:Delivery) REQUIRE d.id IS UNIQUE",
            "CREATE CONSTRAINT segment_page_id IF NOT EXISTS "
            "FOR (p:SegmentPage) REQUIRE p.id IS UNIQUE",
            "CREATE INDEX outbox_seq IF NOT EXISTS FOR (e:Outbox) ON (e.seq)",
            "CREATE INDEX outbox_unsequenced IF NOT EXISTS FOR (e:Unsequenced) ON (e.recorded)",
            "CREATE INDEX delivery_webhook_seq IF NOT EXISTS "
            "FOR (d:Delivery) ON (d.webhook, d.seq)",
            "CREATE INDEX delivery_status IF NOT EXISTS FOR (d:Delivery) ON (d.status)",
            "CREATE INDEX delivery_queued IF NOT EXISTS FOR (d:Queued) ON (d.webhook, d.seq)",
            "CREATE INDEX includes_announce IF NOT EXISTS FOR ()-[r:INCLUDES]-() ON (r.announce)",
            "CREATE INDEX left_announce IF NOT EXISTS FOR ()-[r:LEFT]-() ON (r.announce)",
        ),
    ),
)

MIGRATIONS += (
    Migration(
        10,
        "record matching: models by source and version, reviews by id and status, matched "
        "links by source",
        (
            "CREATE CONSTRAINT match_models_source IF NOT EXISTS "
            "FOR (s:MatchModels) REQUIRE s.source IS UNIQUE",
            "CREATE INDEX match_model_source IF NOT EXISTS "
            "FOR (m:MatchModel) ON (m.source, m.version)",
            "CREATE CONSTRAINT match_review_id IF NOT EXISTS "
            "FOR (v:MatchReview) REQUIRE v.id IS UNIQUE",
            "CREATE INDEX match_review_status IF NOT EXISTS "
            "FOR (v:MatchReview) ON (v.source, v.status)",
            "CREATE INDEX linked_match_source IF NOT EXISTS "
            "FOR ()-[r:LINKED]-() ON (r.match_source)",
        ),
    ),
)

LATEST = MIGRATIONS[-1].version


def schema_version(graph: Graph) -> int:
    """The version applied so far (0 on an empty database)."""
    rows = graph.read(
        "read schema version",
        "MATCH (v:SchemaVersion {id: 'idgraph'}) RETURN v.version AS version",
    )
    return int(rows[0]["version"]) if rows else 0


_SCHEMA_STATEMENTS = ("CREATE CONSTRAINT", "DROP CONSTRAINT", "CREATE INDEX", "DROP INDEX")


def init_schema(graph: Graph, *, data_current: bool = False) -> list[Migration]:
    """Apply the pending migrations in order; return those applied (none when up to date).
    With ``data_current`` (the data is already in the latest model), only their schema
    statements."""
    applied: list[Migration] = []
    current = schema_version(graph)
    for migration in MIGRATIONS:
        if migration.version <= current:
            continue
        for statement in migration.statements:  # outside a transaction: CALL IN TRANSACTIONS
            if data_current and not statement.startswith(_SCHEMA_STATEMENTS):
                continue
            graph.run_autocommit(f"schema migration {migration.version}", statement)
        graph.run(
            f"record schema migration {migration.version}",
            "MERGE (v:SchemaVersion {id: 'idgraph'}) "
            "SET v.version = $version, v.description = $description, v.applied_at = datetime()",
            {"version": migration.version, "description": migration.description},
        )
        applied.append(migration)
    return applied
