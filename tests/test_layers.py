"""The architecture's rules (docs/architecture.md, "The layers"), checked on the source.

Imports point down: values < store and loaders < services < front ends; only the store speaks
Cypher or opens a driver session; no module grows past the size where it should be split.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAX_LINES = 450

# The value modules: what every layer may import (they import only each other).
VALUES = (
    "identity",
    "identity.model",
    "identity.errors",
    "identity.config",
    "identity.normalize",
    "identity.policy",
    "identity.resolve.graph",
    "identity.segments.conditions",
)
SERVICES = (
    "identity.context",
    "identity.ingest",
    "identity.resolve",
    "identity.profiles",
    "identity.segments",
    "identity.audiences",
    "identity.privacy",
    "identity.steward",
    "identity.backfill",
    "identity.engines",
    "identity.webhooks",
    "identity.matching",
)
_CYPHER = re.compile(r"\b(MATCH|MERGE|UNWIND|DETACH DELETE)\s*[\(\$]")


def _layer(module: str) -> tuple[int, str]:
    """(rank, name): a module may import modules of a lower or equal rank (see ALLOWED)."""

    def under(prefixes: tuple[str, ...]) -> bool:
        return any(module == p or module.startswith(p + ".") for p in prefixes)

    if module == "identity" or under(VALUES[1:]):
        return 0, "values"
    if under(("identity.store",)):
        return 1, "store"
    if under(("loaders",)):
        return 1, "loaders"
    if under(SERVICES):
        return 2, "services"
    if under(("identity.api",)):
        return 3, "api"
    if under(("identity.cli",)) or module == "identity.__main__":
        return 3, "cli"
    raise AssertionError(f"{module} is in no layer: add its package to tests/test_layers.py")


# Besides imports from a lower rank, what each layer may import from its own rank.
ALLOWED_SIDEWAYS = {
    ("values", "values"),
    ("store", "store"),
    ("loaders", "loaders"),
    ("services", "services"),
    ("api", "api"),
    ("cli", "cli"),
    ("cli", "api"),  # `idgraph serve` starts the API
}


def _modules() -> list[tuple[str, Path]]:
    found = []
    for top in ("identity", "loaders"):
        for path in sorted((ROOT / top).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found.append((".".join(parts), path))
    return found


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return [n for n in names if n.split(".")[0] in ("identity", "loaders")]


MODULES = _modules()


@pytest.mark.parametrize("module,path", MODULES, ids=[m for m, _ in MODULES])
def test_imports_point_down(module: str, path: Path) -> None:
    rank, layer = _layer(module)
    wrong = []
    for imported in _imports(path):
        other_rank, other = _layer(imported)
        if other_rank > rank or (other_rank == rank and (layer, other) not in ALLOWED_SIDEWAYS):
            wrong.append(f"{imported} ({other})")
    assert not wrong, f"{module} ({layer}) imports upwards or sideways: {wrong}"


@pytest.mark.parametrize("module,path", MODULES, ids=[m for m, _ in MODULES])
def test_only_the_store_speaks_cypher(module: str, path: Path) -> None:
    if module.startswith("identity.store"):
        return
    text = path.read_text(encoding="utf-8")
    tree = ast.parse(text)
    cypher = [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
        if _CYPHER.search(node.value)
    ]
    assert not cypher, f"{module} holds Cypher (lines {cypher}): it belongs in identity/store"
    driver = [
        name
        for name in ast.walk(tree)
        if isinstance(name, ast.ImportFrom) and name.module in ("neo4j", "neo4j.exceptions")
    ]
    assert not driver, f"{module} imports the Neo4j driver: only identity/store may"
    assert ".session(" not in text, f"{module} opens a driver session: use Graph"


def test_sessions_open_only_in_the_driver_module() -> None:
    opened = [
        module
        for module, path in MODULES
        if ".session(" in path.read_text(encoding="utf-8")
        and module not in ("identity.store.driver", "identity.store.local_server")
    ]
    assert not opened, f"driver sessions opened outside Graph: {opened}"


@pytest.mark.parametrize("module,path", MODULES, ids=[m for m, _ in MODULES])
def test_modules_stay_small(module: str, path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{module} has {lines} lines: split it (at most {MAX_LINES})"


def test_identity_is_a_package_per_capability() -> None:
    flat = sorted(p.stem for p in (ROOT / "identity").glob("*.py") if not p.stem.startswith("_"))
    assert flat == ["config", "context", "errors", "model", "normalize"], flat


def test_graphql_folder_is_not_a_package() -> None:
    assert not (ROOT / "graphql" / "__init__.py").exists(), "it would shadow graphql-core"
