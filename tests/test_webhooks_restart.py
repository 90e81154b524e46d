"""Webhook delivery by processes that stop: an ``idgraph serve`` killed mid-send delivers after
a restart; ``idgraph webhook deliver`` alone, failing for good, then redelivering. (No other
server runs beside them here: a second delivery worker would take the webhooks' leases.)"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from identity.config import Settings
from identity.store.driver import Graph
from tests import cli
from tests.api_data import load_people
from tests.api_server import server_env as api_env
from tests.api_server import serving
from tests.receiver import receiving
from tests.test_webhooks_api import ANN, FAST, SECRET, _pair, _webhook

pytestmark = pytest.mark.neo4j


@pytest.mark.timeout(180)
def test_killed_between_commit_and_send_delivers_after_restart(
    neo4j_settings: Settings, graph: Graph, tmp_path: Path
) -> None:
    load_people(graph, tmp_path)
    env = {**api_env(neo4j_settings), **FAST}
    with receiving(SECRET, hold_first=True) as receiver:
        with serving(env, tmp_path / "first.log") as (base, process):
            _webhook(base, receiver.url, ["STEWARD_ACTION"])
            _pair(base, "cutLink", ANN, "shared laptop")
            assert receiver.held.wait(10)  # the delivery is being sent
            process.kill()  # no answer reaches it: the delivery stays pending
            process.wait(10)
        receiver.released.set()
        pending = graph.read("t", "MATCH (d:Delivery) RETURN d.status AS s, d.id AS id")
        assert [p["s"] for p in pending] == ["pending"]
        with serving(env, tmp_path / "second.log"):
            receiver.wait_for(1, timeout=60)  # once the dead worker's lease runs out
    assert [r.delivery for r in receiver.got] == [pending[0]["id"]]
    assert receiver.got[0].signed and receiver.got[0].body["action"] == "cut_link"


def test_cli_manages_webhooks_and_redelivers(
    neo4j_settings: Settings, graph: Graph, tmp_path: Path
) -> None:
    load_people(graph, tmp_path)
    env = cli.cli_env(neo4j_settings, tmp_path, **FAST)
    added = cli.ok("webhook", "add", "http://127.0.0.1:9/hook", "-k", "steward.action", env=env)
    hook = added.split()[0]
    assert hook.startswith("wh-") and "secret:" in added
    assert hook in cli.ok("webhook", "list", env=env)
    refused = cli.idgraph("webhook", "add", "gopher://x", "-k", "steward.action", env=env)
    assert refused.returncode != 0 and "only http:// and https://" in refused.stderr
    # nothing listens on port 9: once the retry time is over, the delivery is failed
    cli.ok("steward", "cut", "cookie:ck-a2", "email:ann@example.org", "--reason", "x", env=env)
    quick = {**env, "IDGRAPH_WEBHOOK_RETRY_HOURS": "0.0003"}  # about a second
    worker = subprocess.Popen(
        [sys.executable, "-m", "identity", "webhook", "deliver"],
        env={**os.environ, **quick},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while "failed" not in cli.ok("webhook", "deliveries", hook, env=env):
            assert time.monotonic() < deadline
            time.sleep(0.2)
    finally:
        worker.terminate()
        worker.wait(30)
    shown = cli.ok("webhook", "deliveries", hook, "--status", "failed", env=env)
    assert "steward.action" in shown and "ConnectError" in shown
    assert "queued 1 deliveries again" in cli.ok("webhook", "redeliver", hook, env=env)
    assert "pending" in cli.ok("webhook", "deliveries", hook, env=env)
    assert f"removed {hook}" in cli.ok("webhook", "remove", hook, env=env)
