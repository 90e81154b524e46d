"""The services tests call, built as a command builds them: one ServiceContext per call."""

from __future__ import annotations

from pathlib import Path

from identity.config import Settings, load_settings
from identity.context import ServiceContext
from identity.policy import Policy
from identity.store.driver import Graph


def settings(tmp_path: Path) -> Settings:
    """The settings of a test: rejects files under ``tmp_path``."""
    return load_settings(rejects_dir=tmp_path / "rejects")


def services(
    graph: Graph,
    tmp_path: Path | None = None,
    policy: Policy | None = None,
    *,
    actor: str | None = None,
    config: Settings | None = None,
) -> ServiceContext:
    """The services on ``graph`` with ``policy`` (default: the defaults) and the settings of
    a test under ``tmp_path`` (or ``config``, or the environment's)."""
    chosen = config or (settings(tmp_path) if tmp_path is not None else load_settings())
    return ServiceContext.create(graph, chosen, policy or Policy(), actor=actor)
