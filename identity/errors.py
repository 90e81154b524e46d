"""The exceptions idgraph raises on purpose.

Every error a user can meet derives from :class:`IdgraphError` and carries a message that
says what to do about it. Driver and subprocess failures are wrapped (``raise ... from e``)
with the name of the operation that failed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class IdgraphError(Exception):
    """Base class of every error idgraph raises on purpose."""


class ConfigError(IdgraphError):
    """A setting is missing or invalid; the message names the setting."""


class LocalServerError(IdgraphError):
    """The private Neo4j server could not be fetched, started, stopped or reached."""


class StoreError(IdgraphError):
    """A database operation failed; keeps the operation name, query and parameters."""

    def __init__(
        self,
        operation: str,
        message: str,
        *,
        query: str | None = None,
        parameters: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{operation}: {message}")
        self.operation = operation
        self.query = query
        self.parameters = dict(parameters or {})


class StoreUnavailableError(StoreError):
    """Neo4j cannot be reached (down, wrong address) or refused the credentials."""


class InputError(IdgraphError):
    """Input that cannot be loaded at all (a bad mapping file, a missing column, an unreadable
    file); single bad records are rejected and reported instead, never raised."""


class ResolveBusyError(IdgraphError):
    """Another ``idgraph resolve`` holds the resolve lock."""


class NotFoundError(InputError):
    """What the input names does not exist (an identifier, an identity, a link)."""


class ConflictError(IdgraphError):
    """The action clashes with the current state (a name already taken, a refresh running)."""
