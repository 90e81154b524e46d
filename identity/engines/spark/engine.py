"""``idgraph resolve --engine spark``: the job run from this process on a Spark session.

The graph the resolve read is written as a job's input (Parquet, under ``IDGRAPH_SPARK_EXCHANGE``
or a temporary directory), the job runs on the session (``IDGRAPH_SPARK_MASTER``, ``local[*]``
by default), and its output is read back as a
:class:`~identity.resolve.engine.Resolution`, from which lineage and profiles are written as
after the default engine.

One session per process: the JVM starts once (a few seconds) and later runs reuse it.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import threading
import uuid
from dataclasses import dataclass, field

import numpy as np
from pyspark.sql import SparkSession

from identity.config import Settings
from identity.engines.spark import job
from identity.engines.spark.exchange import (
    Rules,
    read_resolution,
    remove_directory,
    write_inputs,
)
from identity.errors import IdgraphError
from identity.policy import Policy
from identity.resolve.engine import Resolution
from identity.resolve.graph import LinkGraph

log = logging.getLogger(__name__)

_lock = threading.Lock()
_sessions: dict[str, SparkSession] = {}


class SparkUnavailableError(IdgraphError):
    """No Spark session could be started."""


@dataclass
class SparkRun:
    """What the Spark engine found, and how its stages went."""

    resolution: Resolution
    master: str
    seconds: dict[str, float] = field(default_factory=dict)
    rounds: dict[str, int] = field(default_factory=dict)


def session(master: str, driver_memory: str = "4g") -> SparkSession:
    """The process's Spark session on ``master`` (started on first use)."""
    with _lock:
        found = _sessions.get(master)
        if found is not None and found.sparkContext._jsc is not None:
            return found
        local = master.startswith("local")
        # the executors' Python is this one (a local master; a cluster sets its own)
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        if local:
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        builder = (
            SparkSession.builder.master(master)
            .appName("idgraph resolve")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.ui.enabled", "false")
            .config("spark.driver.memory", driver_memory)
            .config("spark.sql.adaptive.enabled", "true")
            .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        )
        if local:
            # a few partitions per core: Spark's 200 cost more in tasks than they divide
            builder = builder.config("spark.sql.shuffle.partitions", str(_local_partitions()))
        try:
            spark = builder.getOrCreate()
        except Exception as e:  # PySpark's errors for a missing JVM or master are untyped
            raise SparkUnavailableError(
                f"could not start Spark on {master} (Java 17 or 21 on PATH or in JAVA_HOME? "
                f"the master reachable?): {e}"
            ) from e
        spark.sparkContext.setLogLevel("WARN")
        _sessions[master] = spark
        return spark


def _local_partitions() -> int:
    return max(4, 2 * (os.cpu_count() or 1))


def resolve_on_spark(
    graph: LinkGraph, policy: Policy, as_of_ms: int, settings: Settings
) -> SparkRun:
    """Form identities over ``graph`` on Spark: the same resolution as
    :func:`identity.resolve.engine.resolve`."""
    unknown = np.flatnonzero(graph.first_seen < 0)
    if len(unknown):
        graph.load_first_seen(unknown.tolist())  # the split and the device rule need it
    rules = Rules.of(policy, graph.type_names, as_of_ms)
    spark = session(settings.spark_master, settings.spark_driver_memory)
    root, own = _exchange(settings)
    try:
        write_inputs(graph, rules, f"{root}/in")
        summary = job.run(spark, f"{root}/in", f"{root}/out")
        resolution = read_resolution(f"{root}/out", graph, rules)
    except BaseException:
        if not own:
            log.warning("spark engine: the run's files are kept for inspection in %s", root)
        raise
    finally:
        if own:
            shutil.rmtree(root, ignore_errors=True)
    if not own:
        remove_directory(root)
    log.info("spark engine: %s", summary)
    return SparkRun(
        resolution=resolution,
        master=settings.spark_master,
        seconds=summary["seconds"],
        rounds=summary["rounds"],
    )


def _exchange(settings: Settings) -> tuple[str, bool]:
    """The run's exchange directory, and whether it is a temporary one to remove after."""
    if settings.spark_exchange:
        return f"{settings.spark_exchange.rstrip('/')}/run-{uuid.uuid4().hex[:12]}", False
    return tempfile.mkdtemp(prefix="idgraph-spark-"), True


class SparkEngine:
    """The engine of ``idgraph resolve --engine spark``."""

    name = "spark"
    first_seen = True  # the executors cannot ask Neo4j for it later

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.notes: list[str] = []
        self.last: SparkRun | None = None
        session(settings.spark_master, settings.spark_driver_memory)  # fail before any run

    def resolve(self, graph: LinkGraph, policy: Policy, as_of_ms: int) -> Resolution:
        run = resolve_on_spark(graph, policy, as_of_ms, self.settings)
        self.last = run
        stages = ", ".join(f"{k} {v:.1f}s" for k, v in run.seconds.items())
        rounds = ", ".join(f"{k} {v}" for k, v in run.rounds.items())
        self.notes = [f"spark ({run.master}): {stages}", f"large-star/small-star rounds: {rounds}"]
        return run.resolution
