"""The one door to Neo4j: opening the driver and running queries with errors that say what failed.

Every query idgraph runs goes through :class:`Graph` (or :class:`AsyncGraph`, the API's read
side), which re-raises driver failures as :class:`~identity.errors.StoreError` carrying the
operation name, the query and its parameters: single queries (``run``, ``read``,
``read_collected``), managed write transactions of several statements (``write``), and
streamed reads (``stream``). Nothing else opens a session. Values from outside always travel
as parameters, never inside the query text.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, LiteralString, TypeVar

from neo4j import (
    READ_ACCESS,
    AsyncDriver,
    AsyncGraphDatabase,
    GraphDatabase,
    ManagedTransaction,
    Record,
    RoutingControl,
)
from neo4j import Driver as Driver  # re-exported: the API takes one from tests
from neo4j.exceptions import AuthError, DriverError, Neo4jError, ServiceUnavailable, SessionExpired

from identity.config import Settings
from identity.errors import StoreError, StoreUnavailableError
from identity.store.local_server import LocalServer, ServerConfig

T = TypeVar("T")


def resolve_uri(settings: Settings) -> str:
    """``IDGRAPH_NEO4J_URI`` when set, else the URI of the running local server."""
    if settings.neo4j_uri:
        return settings.neo4j_uri
    status = LocalServer(ServerConfig.from_settings(settings)).status()
    if not status.running:
        raise StoreUnavailableError(
            "connect",
            "no Neo4j to talk to: run `idgraph neo4j start` for a local server, "
            "or set IDGRAPH_NEO4J_URI to an existing one",
        )
    return status.uri


def open_driver(
    settings: Settings,
    *,
    verify: bool = True,
    timeout: float = 30.0,
    retry_time: float = 30.0,
) -> Driver:
    """Open the driver once (CLI command or ASGI lifespan) and pass it down explicitly.

    ``timeout`` bounds connecting and waiting for a pooled connection, ``retry_time`` how long
    a transaction is retried while Neo4j is unreachable, both in seconds.
    """
    uri = resolve_uri(settings)
    driver = GraphDatabase.driver(
        uri,
        auth=(settings.neo4j_user, settings.neo4j_password.get_secret_value()),
        connection_acquisition_timeout=timeout,
        connection_timeout=timeout,
        max_transaction_retry_time=retry_time,
        notifications_min_severity="OFF",
    )
    if verify:
        try:
            driver.verify_connectivity()
        except BaseException as e:
            driver.close()
            raise translate_error("connect", e, uri=uri, user=settings.neo4j_user) from e
    return driver


def translate_error(
    operation: str,
    error: BaseException,
    *,
    uri: str | None = None,
    user: str | None = None,
    query: str | None = None,
    parameters: Mapping[str, Any] | None = None,
) -> BaseException:
    where = f" at {uri}" if uri else ""
    if isinstance(error, AuthError):
        return StoreUnavailableError(
            operation,
            f"Neo4j{where} refused the credentials of user {user!r}: "
            "check IDGRAPH_NEO4J_USER and IDGRAPH_NEO4J_PASSWORD",
        )
    if isinstance(error, ServiceUnavailable | SessionExpired):
        return StoreUnavailableError(operation, f"Neo4j{where} is unreachable: {error}")
    if isinstance(error, Neo4jError):
        return StoreError(
            operation, f"{error.code}: {error.message}", query=query, parameters=parameters
        )
    if isinstance(error, DriverError):
        return StoreError(operation, str(error), query=query, parameters=parameters)
    return error


class Graph:
    """A driver bound to one database, with named operations and translated errors."""

    def __init__(self, driver: Driver, database: str) -> None:
        self.driver = driver
        self.database = database

    def run(
        self,
        operation: str,
        query: LiteralString,
        parameters: Mapping[str, Any] | None = None,
        *,
        write: bool = True,
    ) -> list[dict[str, Any]]:
        """Run one auto-retried transaction and return its records as dicts."""
        params = dict(parameters or {})
        try:
            records, _, _ = self.driver.execute_query(
                query,
                params,
                database_=self.database,
                routing_=RoutingControl.WRITE if write else RoutingControl.READ,
            )
        except (Neo4jError, DriverError) as e:
            raise translate_error(operation, e, query=query, parameters=params) from e
        return [record.data() for record in records]

    def read(
        self, operation: str, query: LiteralString, parameters: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        return self.run(operation, query, parameters, write=False)

    def read_collected(
        self, operation: str, query: LiteralString, parameters: Mapping[str, Any] | None = None
    ) -> list[Any]:
        """The list in the first column of a query that returns one ``collect(...)`` row.

        For bulk reads: the driver's cost is per record, and the values come back as they are
        (``Record.data()`` would walk every nested list again).
        """
        params = dict(parameters or {})
        try:
            records, _, _ = self.driver.execute_query(
                query, params, database_=self.database, routing_=RoutingControl.READ
            )
        except (Neo4jError, DriverError) as e:
            raise translate_error(operation, e, query=query, parameters=params) from e
        return list(records[0].value(0)) if records else []

    def write(
        self,
        operation: str,
        work: Callable[[ManagedTransaction], T],
        *,
        query: str | None = None,
        parameters: Mapping[str, Any] | None = None,
    ) -> T:
        """Run ``work(tx)`` in one managed write transaction, retried on transient errors
        (deadlocks between concurrent writers): for several statements that commit together.
        ``query`` and ``parameters``, when given, are reported with a failure."""
        try:
            with self.driver.session(database=self.database) as session:
                return session.execute_write(work)
        except (Neo4jError, DriverError) as e:
            raise translate_error(operation, e, query=query, parameters=parameters) from e

    def stream(
        self,
        operation: str,
        query: LiteralString,
        parameters: Mapping[str, Any] | None = None,
        *,
        fetch_size: int = 1000,
    ) -> Iterator[Record]:
        """The records of one auto-commit read as they arrive, ``fetch_size`` at a time:
        memory stays bounded whatever the result's size. Not retried (it may have yielded)."""
        params = dict(parameters or {})
        try:
            with self.driver.session(
                database=self.database, fetch_size=fetch_size, default_access_mode=READ_ACCESS
            ) as session:
                yield from session.run(query, params)
        except (Neo4jError, DriverError) as e:
            raise translate_error(operation, e, query=query, parameters=params) from e

    def ping(self) -> None:
        """One round trip, not retried: readiness probes must answer fast when Neo4j is down."""
        try:
            with self.driver.session(database=self.database) as session:
                session.run("RETURN 1").consume()
        except (Neo4jError, DriverError, OSError) as e:
            raise translate_error("ping", e) from e

    def forget_bookmarks(self) -> None:
        """After the database was replaced whole (a backfill's import): the driver's
        bookmarks name transactions of the old one, which the new one never reaches; they
        are replaced by one of the new database (a retried round trip, which also waits
        for it to come online)."""
        try:
            with self.driver.session(database=self.database) as session:
                session.execute_write(lambda tx: tx.run("RETURN 1").consume())
                fresh = session.last_bookmarks()
        except (Neo4jError, DriverError) as e:
            raise translate_error("reconnect after the database was replaced", e) from e
        manager = self.driver.execute_query_bookmark_manager
        manager.update_bookmarks(manager.get_bookmarks(), fresh.raw_values)

    def wipe(self) -> None:
        """Delete every node and relationship (tests and `idgraph db wipe`); keeps the schema."""
        self.run_autocommit(
            "wipe database",
            "MATCH (n) CALL (n) { DETACH DELETE n } IN TRANSACTIONS OF 10000 ROWS",
        )

    def run_autocommit(
        self,
        operation: str,
        query: LiteralString,
        parameters: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """Run outside a managed transaction: needed by ``CALL {...} IN TRANSACTIONS``."""
        params = dict(parameters or {})
        try:
            with self.driver.session(database=self.database) as session:
                return [record.data() for record in session.run(query, params)]
        except (Neo4jError, DriverError) as e:
            raise translate_error(operation, e, query=query, parameters=params) from e


def open_async_driver(settings: Settings, *, timeout: float) -> AsyncDriver:
    """The driver the API reads through: connecting, waiting for a pooled connection and
    retrying a transaction are all bounded by ``timeout`` seconds, so that a request fails
    fast when Neo4j is down, and the next one succeeds as soon as it is back."""
    return AsyncGraphDatabase.driver(
        resolve_uri(settings),
        auth=(settings.neo4j_user, settings.neo4j_password.get_secret_value()),
        connection_acquisition_timeout=timeout,
        connection_timeout=timeout,
        max_transaction_retry_time=timeout,
        notifications_min_severity="OFF",
    )


class AsyncGraph:
    """The API's read side: like :class:`Graph`, but async, returning each record's values as
    a list, and reporting each query's time to ``observe(operation, seconds)`` (the metrics).

    Reads run as auto-commit queries, not retried transactions: a lookup answers at once or
    fails with Neo4j unavailable (the caller retries), and it costs the driver a third less
    CPU than ``execute_query``."""

    def __init__(
        self,
        driver: AsyncDriver,
        database: str,
        observe: Callable[[str, float], None] | None = None,
    ) -> None:
        self.driver = driver
        self.database = database
        self.observe = observe

    async def read(
        self, operation: str, query: LiteralString, parameters: Mapping[str, Any] | None = None
    ) -> list[list[Any]]:
        params = dict(parameters or {})
        started = time.perf_counter()
        try:
            async with self.driver.session(
                database=self.database, default_access_mode=READ_ACCESS
            ) as session:
                result = await session.run(query, params)
                records: list[list[Any]] = await result.values()
        except (Neo4jError, DriverError, OSError) as e:
            raise translate_error(operation, e, query=query, parameters=params) from e
        finally:
            if self.observe is not None:
                self.observe(operation, time.perf_counter() - started)
        return records

    async def ping(self) -> None:
        await self.read("ping", "RETURN 1")
