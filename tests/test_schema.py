import pytest

from identity.errors import StoreError
from identity.store.driver import Graph
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
