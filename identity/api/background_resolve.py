"""Incremental resolves in the background of the API server.

Ingestion answers as soon as its batch is written; it then *requests* a resolve. Requests
coalesce: one worker thread runs ``resolve_identities`` (incremental) whenever requests came
in since its last run, so a burst of 100 small batches costs a few resolves, not 100. A run
that fails (Neo4j down, the lock held by a CLI resolve) is retried after a pause; the batches
stay pending in the database, so nothing is lost even if the server stops.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from identity.context import ServiceContext
from identity.errors import IdgraphError
from identity.resolve.service import ResolveReport, resolve_identities

log = logging.getLogger("idgraph.resolver")

_RETRY_SECONDS = 2.0


class BackgroundResolver:
    """One worker thread resolving incrementally after each burst of :meth:`request`."""

    def __init__(
        self, services: ServiceContext, on_resolved: Callable[[], None] | None = None
    ) -> None:
        self._services = services
        self._on_resolved = on_resolved  # called from the worker thread after each run
        self._wanted = threading.Event()
        self._stopping = threading.Event()
        self._idle = threading.Condition()
        self._running = False
        self._thread: threading.Thread | None = None
        self.runs = 0
        self.last_report: ResolveReport | None = None
        self.last_error: str | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="idgraph-resolver", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stopping.set()
        self._wanted.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def request(self) -> None:
        """Ask for a resolve soon; returns at once."""
        self._wanted.set()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no resolve is wanted or running (tests and graceful shutdown)."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._running or self._wanted.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._wanted.wait()
            if self._stopping.is_set():
                break
            with self._idle:
                self._running = True
                self._wanted.clear()
            try:
                self.last_report = resolve_identities(self._services, wait=30.0)
                self.runs += 1
                self.last_error = None
                if self._on_resolved is not None:
                    self._on_resolved()
            except IdgraphError as e:  # Neo4j down, the lock held by a CLI resolve
                self.last_error = str(e)
                log.warning("background resolve failed, retrying: %s", e)
                self._wanted.set()
                self._stopping.wait(_RETRY_SECONDS)
            except Exception:
                log.exception("background resolve failed")
                self._wanted.set()
                self._stopping.wait(_RETRY_SECONDS)
            finally:
                with self._idle:
                    self._running = False
                    self._idle.notify_all()
