"""A webhook receiver for tests and the benchmark: a starlette app under uvicorn on a free
loopback port, in a thread, that checks each delivery's signature and keeps what came."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from identity.store.host import free_port
from identity.webhooks.signing import verify


@dataclass
class Received:
    delivery: str
    body: dict[str, Any]
    signed: bool
    at: float  # time.time() on receipt


@dataclass
class Receiver:
    secret: str
    url: str = ""
    fail_first: int = 0  # answer 500 to this many requests first
    hold_first: bool = False  # keep the first request waiting until released
    hold_all: bool = False  # keep every request waiting until released
    got: list[Received] = field(default_factory=list)
    requests: int = 0
    released: threading.Event = field(default_factory=threading.Event)
    held: threading.Event = field(default_factory=threading.Event)

    async def hook(self, request: Request) -> Response:
        raw = await request.body()
        self.requests += 1
        if self.hold_all or (self.hold_first and self.requests == 1):
            self.held.set()
            while not self.released.is_set():
                await asyncio.sleep(0.05)
            return Response("too late", status_code=200)
        if self.requests <= self.fail_first:
            return Response("not now", status_code=500)
        self.got.append(
            Received(
                request.headers["x-idgraph-delivery"],
                json.loads(raw),
                verify(self.secret, request.headers, raw),
                time.time(),
            )
        )
        return Response(status_code=204)

    def bodies(self, kind: str | None = None) -> list[dict[str, Any]]:
        return [r.body for r in self.got if kind is None or r.body["kind"] == kind]

    def wait_for(self, count: int, timeout: float = 30.0, kind: str | None = None) -> None:
        deadline = time.monotonic() + timeout
        while len(self.bodies(kind)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{len(self.bodies(kind))} deliveries of {kind or 'any kind'} "
                    f"after {timeout}s, wanted {count}: {self.bodies()}"
                )
            time.sleep(0.02)


@contextmanager
def receiving(secret: str, **options: Any) -> Iterator[Receiver]:
    """A receiver serving on a free port until the block ends."""
    receiver = Receiver(secret, **options)
    port = free_port()
    receiver.url = f"http://127.0.0.1:{port}/hook"
    app = Starlette(routes=[Route("/hook", receiver.hook, methods=["POST"])])
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield receiver
    finally:
        receiver.released.set()
        server.should_exit = True
        thread.join(10)
