import pytest

from identity.config import Settings, load_settings
from identity.errors import StoreError, StoreUnavailableError
from identity.store.driver import Graph, open_driver, resolve_uri
from identity.store.host import free_port

pytestmark = pytest.mark.neo4j


def test_the_server_is_a_real_neo4j_5_26_community(graph: Graph) -> None:
    rows = graph.read("components", "CALL dbms.components() YIELD name, versions, edition RETURN *")
    assert rows, "dbms.components() returned nothing"
    kernel = rows[0]
    assert kernel["name"] == "Neo4j Kernel"
    assert kernel["edition"] == "community"
    assert kernel["versions"][0].startswith("5.26.")


def test_writes_and_reads_round_trip(graph: Graph) -> None:
    graph.run("create", "CREATE (:Probe {value: $value})", {"value": "x'}) DETACH DELETE n //"})
    rows = graph.read("read", "MATCH (p:Probe) RETURN p.value AS value")
    assert rows == [{"value": "x'}) DETACH DELETE n //"}]


def test_wipe_empties_the_database(graph: Graph) -> None:
    graph.run("create", "UNWIND range(1, 2500) AS i CREATE (:Probe {i: i})-[:R]->(:Probe)")
    graph.wipe()
    assert graph.read("count", "MATCH (n) RETURN count(n) AS n") == [{"n": 0}]


def test_query_errors_keep_operation_query_and_parameters(graph: Graph) -> None:
    with pytest.raises(StoreError) as info:
        graph.run("broken op", "RETURN $x +* 1", {"x": 1})
    error = info.value
    assert str(error).startswith("broken op: Neo.ClientError.Statement.SyntaxError")
    assert error.query == "RETURN $x +* 1"
    assert error.parameters == {"x": 1}


def test_wrong_credentials_are_named(neo4j_settings: Settings) -> None:
    # A user that does not exist: failed attempts would lock the real user out for a while.
    settings = neo4j_settings.model_copy(update={"neo4j_user": "nobody"})
    with pytest.raises(StoreUnavailableError) as info:
        open_driver(settings)
    assert "IDGRAPH_NEO4J_PASSWORD" in str(info.value)


def test_unreachable_server_is_reported() -> None:
    settings = load_settings(neo4j_uri=f"bolt://127.0.0.1:{free_port()}")
    with pytest.raises(StoreUnavailableError, match="unreachable"):
        open_driver(settings)


def test_without_uri_or_local_server_says_what_to_do(tmp_path: object) -> None:
    settings = load_settings(neo4j_uri=None, state_dir=tmp_path)
    with pytest.raises(StoreUnavailableError, match="idgraph neo4j start"):
        resolve_uri(settings)
