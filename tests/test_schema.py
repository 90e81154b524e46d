import pytest

from identity.errors import StoreError
from identity.store.driver import Graph
from identity.store.runs import touched_keys
from identity.store.schema import LATEST, MIGRATIONS, init_schema, schema_version

pytestmark = pytest.mark.neo4j


def _schema_objects(graph: Graph) -> set[str]:
    constraints = graph.read("constraints", "SHOW CONSTRAINTS YIELD name RETURN name")
    indexes = graph.read(
        "indexes", "SHOW INDEXES YIELD name, type WHERE type <> 'LOOKUP' RETURN name"
    )
    return {row["name"] for row in constraints + indexes}


def test_init_creates_constraints_and_records_the_version(graph: Graph) -> None:
    init_schema(graph)
    names = _schema_objects(graph)
    for expected in (
        "identifier_key", "identity_id", "identity_event_id", "batch_id", "segment_id",
        "source_name", "identifier_touched", "identity_event_at", "linked_last_seen",
    ):  # fmt: skip
        assert expected in names
    assert schema_version(graph) == LATEST


def test_init_is_idempotent(graph: Graph) -> None:
    first = init_schema(graph)
    before = _schema_objects(graph)
    second = init_schema(graph)
    assert [m.version for m in first] == [m.version for m in MIGRATIONS]
    assert second == []
    assert _schema_objects(graph) == before
    # Lost version node (e.g. wiped data): re-applying every statement is still harmless.
    graph.run("drop version", "MATCH (v:SchemaVersion) DELETE v")
    assert [m.version for m in init_schema(graph)] == [m.version for m in MIGRATIONS]
    assert _schema_objects(graph) == before


def test_identifier_keys_are_unique(graph: Graph) -> None:
    init_schema(graph)
    graph.run("create", "CREATE (:Identifier {key: 'email:a@b.fr'})")
    with pytest.raises(StoreError, match="ConstraintValidationFailed"):
        graph.run("create again", "CREATE (:Identifier {key: 'email:a@b.fr'})")


def test_migrations_bring_a_version_4_graph_up_to_date(graph: Graph) -> None:
    """A graph a release before the Volume work wrote: per-message nodes, load batches found
    through ``Identifier.batch``, no ``:Stated`` label. Migrations 5 to 7 convert it."""
    init_schema(graph)
    graph.run(
        "a version 4 graph",
        """
        CREATE (:SeenMessage {id: 'web:m-1'}), (:SeenMessage {id: 'web:m-2'})
        CREATE (:Batch {id: 'b-pending', status: 'completed'})
        CREATE (:Batch {id: 'b-resolved', status: 'completed', resolved_at: datetime()})
        CREATE (:Identifier:Email {key: 'email:a@x.org', batch: 'b-pending'})
        CREATE (:Identifier:CrmId {key: 'crm_id:C1', batch: 'b-resolved', `trait.city`: 'Lyon'})
        CREATE (:Identifier:Cookie {key: 'cookie:k1', `event_count.Order`: 2})
        CREATE (d:Identifier:DmpId {key: 'dmp_id:P1'})-[:IN_SEGMENT]->(:Segment {id: 's1'})
        WITH 1 AS done
        MATCH (v:SchemaVersion {id: 'idgraph'}) SET v.version = 4
        """,
    )
    applied = init_schema(graph)
    assert [m.version for m in applied] == [v for v in range(5, LATEST + 1)]
    assert graph.read("seen", "MATCH (m:SeenMessage) RETURN count(m) AS n")[0]["n"] == 0
    assert touched_keys(graph, ["b-pending"]) == {"email:a@x.org"}
    assert touched_keys(graph, ["b-resolved"]) == set()  # resolved already: nothing to redo
    stated = graph.read("stated", "MATCH (i:Stated) RETURN i.key AS key ORDER BY key")
    assert [row["key"] for row in stated] == ["cookie:k1", "crm_id:C1", "dmp_id:P1"]
    assert "identifier_batch" not in _schema_objects(graph)


def test_data_written_in_the_latest_model_takes_the_schema_statements_only(graph: Graph) -> None:
    """A backfill's import is in the latest model already: the migrations' data statements
    (which scan every identifier) are skipped, their constraints and indexes created."""
    graph.run(
        "an imported graph",
        "CREATE (:Batch {id: 'b-1', status: 'completed'}) "
        "CREATE (:Identifier:CrmId {key: 'crm_id:C1', batch: 'b-1', `trait.city`: 'Lyon'})",
    )
    applied = init_schema(graph, data_current=True)
    assert [m.version for m in applied] == [m.version for m in MIGRATIONS]
    assert schema_version(graph) == LATEST
    assert graph.read("stated", "MATCH (i:Stated) RETURN count(i) AS n")[0]["n"] == 0
    assert touched_keys(graph, ["b-1"]) == set()
    objects = _schema_objects(graph)
    assert {"identifier_key", "identifier_touched"} <= objects
    assert "identifier_batch" not in objects
