from pathlib import Path

import pytest

from identity.config import load_settings
from identity.errors import ConfigError


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("IDGRAPH_NEO4J_URI", "IDGRAPH_STATE_DIR", "IDGRAPH_POLICY"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.neo4j_uri is None
    assert settings.neo4j_user == "neo4j"
    assert settings.neo4j_database == "neo4j"
    assert settings.state_dir == Path.home() / ".local" / "state" / "idgraph"
    assert settings.neo4j_version.startswith("5.26.")
    assert settings.neo4j_bolt_port == 7687
    assert settings.neo4j_http_port is None


def test_environment_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text("")
    monkeypatch.setenv("IDGRAPH_NEO4J_URI", "neo4j://db.internal:7687")
    monkeypatch.setenv("IDGRAPH_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("IDGRAPH_POLICY", str(policy))
    monkeypatch.setenv("IDGRAPH_NEO4J_BOLT_PORT", "7999")
    settings = load_settings()
    assert settings.neo4j_uri == "neo4j://db.internal:7687"
    assert settings.neo4j_home == tmp_path / "neo4j"
    assert settings.policy == policy
    assert settings.neo4j_bolt_port == 7999


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("IDGRAPH_NEO4J_URI", "http://localhost:7474", "IDGRAPH_NEO4J_URI: expected a Bolt URI"),
        ("IDGRAPH_NEO4J_PASSWORD", "short", "IDGRAPH_NEO4J_PASSWORD: Neo4j requires at least 8"),
        ("IDGRAPH_NEO4J_BOLT_PORT", "70000", "IDGRAPH_NEO4J_BOLT_PORT:"),
        ("IDGRAPH_NEO4J_BOLT_PORT", "seven", "IDGRAPH_NEO4J_BOLT_PORT:"),
        ("IDGRAPH_POLICY", "/nonexistent/policy.toml", "IDGRAPH_POLICY: no such file"),
        ("IDGRAPH_NEO4J_HEAP", "lots", "IDGRAPH_NEO4J_HEAP: expected auto or a size"),
        ("IDGRAPH_NEO4J_VERSION", "4.4.0", "IDGRAPH_NEO4J_VERSION:"),
        ("IDGRAPH_NEO4J_DATABASE", "bad name;", "IDGRAPH_NEO4J_DATABASE:"),
    ],
)
def test_bad_settings_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert expected in str(info.value)


def test_password_is_not_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IDGRAPH_NEO4J_PASSWORD", "very-secret-password")
    assert "very-secret-password" not in repr(load_settings())
