"""The Spark job: a job's input directory in, its output directory out (see
:mod:`identity.engines.spark.exchange`), the rules in the order of
:mod:`identity.resolve.engine`:

1. candidate links; 2. shared identifiers, direct then two-hop (aggregations and one
self-join), then components over what is left and the bridge test per component; 3. the
device rule per component; forced links; 4. components again where a rule took links out,
the circuit breaker (component sizes); 5. the limit split per component. The per-component
rules run with ``applyInPandas`` (:mod:`identity.engines.spark.per_component`); components
come from :mod:`identity.engines.spark.components`. Nothing is collected to the driver but
counts and the rows of the quarantines and device calls, which are written out anyway.

Run it on any cluster::

    spark-submit --py-files idgraph.zip -m ... identity/engines/spark/job.py IN OUT

or in-process with :func:`run` (what ``idgraph resolve --engine spark`` does).
"""

from __future__ import annotations

import argparse
import logging
import time
from typing import Any

from pyspark.sql import DataFrame, GroupedData, SparkSession
from pyspark.sql import functions as F

from identity.engines.spark import graphwide, per_component
from identity.engines.spark.components import components
from identity.engines.spark.exchange import ExchangeError, Rules, write_summary
from identity.resolve.engine import DEVICE, LIMIT, QUARANTINED, SHARED
from identity.resolve.graph import BRIDGE, DIRECT, TWO_HOP

log = logging.getLogger(__name__)


class Job:
    """One run of the rules over one input directory."""

    def __init__(self, spark: SparkSession, inputs: str, rules: Rules) -> None:
        self.spark = spark
        self.rules = rules
        self.ids = spark.read.parquet(f"{inputs}/identifiers")
        self.keys = self.ids.select("id", "key")
        self.links = spark.read.parquet(f"{inputs}/links")
        self.seconds: dict[str, float] = {}
        self.rounds: dict[str, int] = {}
        self.counts: dict[str, int] = {}
        self._clock = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] = round(self.seconds.get(stage, 0.0) + now - self._clock, 3)
        self._clock = now

    def run(self, outputs: str) -> dict[str, Any]:
        rules = self.rules
        links = graphwide.candidates(self.links, self.ids, rules).localCheckpoint()
        self._check(links)
        self.lap("candidates")
        pairs = graphwide.pairs(links).localCheckpoint()
        found = [
            graphwide.stored(self.ids, TWO_HOP),
            graphwide.stored(self.ids, DIRECT),
            graphwide.direct(pairs, self.keys, rules),
        ]
        shared = _union(found).localCheckpoint()
        if rules.two_hop:
            direct_ids = shared.where(F.col("kind") == DIRECT).select("id")
            found.append(graphwide.two_hop(pairs, direct_ids, self.keys, rules))
            shared = _union(found).localCheckpoint()
        self.lap("shared")
        links = _exclude(links, shared, "observed").localCheckpoint()
        labels = self._components(links, "components before bridges")
        bridges = self._bridges(links, labels)
        if bridges.take(1):
            shared = _union([shared, bridges]).localCheckpoint()
            links = _exclude(links, bridges, "eligible").localCheckpoint()
            labels = self._components_within(links, labels, bridges, "components after bridges")
        self.lap("bridges")
        calls = self._devices(links, labels)
        if calls is not None:
            refused = calls.select(F.explode("refused").alias("id"))
            links = _refuse(links, refused, DEVICE).localCheckpoint()
            cut = links.where(F.col("verdict") == DEVICE).select(F.col("a").alias("id"))
            if cut.take(1):
                labels = self._components_within(links, labels, cut, "components after devices")
        self.lap("devices")
        forced = links.where(F.col("forced_c") & ~F.col("eligible"))
        if forced.take(1):
            ends = forced.select(F.col("a").alias("id")).union(forced.select(F.col("b")))
            links = links.withColumn("eligible", F.col("eligible") | F.col("forced_c"))
            links = links.localCheckpoint()
            labels = self._components_within(links, labels, ends, "components with forced links")
        groups, links, quarantined = self._breaker_and_limits(links, labels)
        self.lap("limits")
        self._write(outputs, groups, links, shared, quarantined, calls)
        self.lap("write")
        summary = {"seconds": self.seconds, "rounds": self.rounds, "counts": self.counts}
        write_summary(outputs, summary)
        rules.write(outputs)  # what the results were computed under, checked on import
        return summary

    def _check(self, links: DataFrame) -> None:
        """Each identifier once, every link's ends among them: else the files are not one
        graph (edited, or from two exports), and nothing is computed."""
        ids = self.ids.agg(F.count("*").alias("rows"), F.countDistinct("id").alias("ids"))
        row = ids.first()
        if row is not None and row["rows"] != row["ids"]:
            raise ExchangeError(
                f"identifiers/ holds {row['rows'] - row['ids']:,} repeated ids: export again"
            )
        read, joined = self.links.count(), links.count()
        if read != joined:
            raise ExchangeError(
                f"{read - joined:,} of {read:,} links name an identifier that identifiers/ "
                "does not hold: export the graph again"
            )
        self.counts["identifiers"], self.counts["links"] = int(row["ids"]) if row else 0, read

    def _components(self, links: DataFrame, what: str) -> DataFrame:
        edges = links.where("eligible").select("a", "b")
        found = components(self.ids, edges, what)
        self.rounds[what] = found.rounds
        return found.frame.localCheckpoint()

    def _components_within(
        self, links: DataFrame, labels: DataFrame, touched: DataFrame, what: str
    ) -> DataFrame:
        """``labels`` again after a rule took links out of, or a forced link added links
        between, the components of the identifiers ``touched`` (``id``): only those
        components are computed again (the others cannot have changed)."""
        affected = labels.join(touched.select("id").distinct(), "id", "left_semi")
        members = labels.join(affected.select("label").distinct(), "label", "left_semi")
        members = members.select("id").localCheckpoint()
        ends = members.select(F.col("id").alias("a"))
        edges = links.where("eligible").join(ends, "a", "left_semi").select("a", "b")
        found = components(members, edges, what)
        self.rounds[what] = found.rounds
        again = found.frame.select("id", F.col("label").alias("again"))
        relabelled = labels.join(again, "id", "left").select(
            "id", F.coalesce("again", "label").alias("label")
        )
        checked: DataFrame = relabelled.localCheckpoint()
        return checked

    def _component_links(
        self, links: DataFrame, labels: DataFrame, picked: DataFrame
    ) -> GroupedData:
        """The eligible links of the components ``picked`` (``label``), with their ends' keys,
        grouped by component for ``applyInPandas``."""
        keyed = (
            links.where("eligible")
            .join(labels.select(F.col("id").alias("a"), "label"), "a")
            .join(picked, "label", "left_semi")
            .join(graphwide.end(self.keys, "a", a_key="key"), "a")
            .join(graphwide.end(self.keys, "b", b_key="key"), "b")
        )
        return keyed.select(*per_component.COMPONENT).groupBy("label")

    def _bridges(self, links: DataFrame, labels: DataFrame) -> DataFrame:
        rules = self.rules
        anchors = self.ids.where(
            F.col("region") & graphwide.at(rules.anchor, F.col("type"), "boolean")
        )
        busy = (
            anchors.join(labels, "id")
            .groupBy("label", "type")
            .count()
            .where(F.col("count") >= 2)
            .select("label")
            .distinct()
        )
        found = self._component_links(links, labels, busy).applyInPandas(
            per_component.bridges(rules), per_component.BRIDGES
        )
        bridges: DataFrame = found.select(
            "id",
            F.lit(BRIDGE).alias("kind"),
            "type",
            "count",
            F.lit(None).cast("long").alias("limit"),
            "examples",
        ).localCheckpoint()
        return bridges

    def _devices(self, links: DataFrame, labels: DataFrame) -> DataFrame | None:
        rules = self.rules
        if not rules.device_types:
            return None
        judged = F.col("tu").isin(rules.device_types)
        user_anchor = graphwide.at(rules.anchor, F.col("tu"), "boolean")
        device_anchor = graphwide.at(rules.anchor, F.col("tv"), "boolean")
        both = graphwide.both_ways(links.where("eligible"))
        busy_devices = (
            both.where(judged & user_anchor & ~device_anchor & F.col("rv"))
            .groupBy("v", "tu")
            .count()
            .where(F.col("count") >= 2)
            .select(F.col("v").alias("id"))
            .distinct()
        )
        busy = busy_devices.join(labels, "id").select("label").distinct()
        bound = rules.max_identity_size
        if bound is not None:
            small = labels.groupBy("label").count().where(F.col("count") <= bound)
            busy = busy.join(small, "label", "left_semi")
        return (
            self._component_links(links, labels, busy)
            .applyInPandas(per_component.devices(rules), per_component.DEVICES)
            .localCheckpoint()
        )

    def _breaker_and_limits(
        self, links: DataFrame, labels: DataFrame
    ) -> tuple[DataFrame, DataFrame, DataFrame]:
        rules = self.rules
        sizes = labels.groupBy("label").agg(F.count("*").alias("size"))
        bound = rules.max_identity_size
        big = sizes.where(F.col("size") > bound) if bound is not None else sizes.limit(0)
        big = big.select("label").localCheckpoint()
        in_big = labels.join(big, "label", "left_semi").select("id").localCheckpoint()
        links = _refuse(links.join(in_big.select(F.col("id").alias("a")), "a", "left_semi"),
                        None, QUARANTINED).unionByName(
            links.join(in_big.select(F.col("id").alias("a")), "a", "left_anti")
        ).localCheckpoint()  # fmt: skip
        named = labels.join(self.ids.select("id", "key", "region"), "id")
        quarantined = (
            named.join(big, "label", "left_semi")
            .groupBy("label")
            .agg(
                F.array_sort(F.collect_list("key")).alias("members"),
                F.max(F.col("region").cast("int")).alias("in_region"),
            )
            .where(F.col("in_region") == 1)
            .select("members")
        )
        limit = graphwide.at(rules.limits, F.col("type"))
        breaking = (
            labels.join(self.ids.select("id", "type"), "id")
            .groupBy("label", "type")
            .count()
            .where(limit.isNotNull() & (F.col("count") > limit))
            .select("label")
            .distinct()
            .join(big, "label", "left_anti")
        )
        split = (
            self._component_links(links, labels, breaking)
            .applyInPandas(per_component.parts(rules), per_component.PARTS)
            .localCheckpoint()
        )
        conflicts = split.where(F.col("link").isNotNull()).select(
            F.col("link").alias("id"), "conflict_type", "conflict_limit", "conflict_identifiers"
        )
        links = _refuse(links, conflicts.select("id"), LIMIT).join(conflicts, "id", "left")
        part_of = split.where(F.col("part").isNotNull()).select("id", "part")
        groups = (
            labels.join(part_of, "id", "left")
            .join(in_big.withColumn("alone", F.lit(True)), "id", "left")
            .select(
                "id",
                F.when(F.col("alone"), F.col("id"))
                .otherwise(F.coalesce("part", "label"))
                .alias("group"),
            )
        )
        self.counts["quarantined"] = in_big.count()
        return groups, links, quarantined

    def _write(
        self,
        outputs: str,
        groups: DataFrame,
        links: DataFrame,
        shared: DataFrame,
        quarantined: DataFrame,
        calls: DataFrame | None,
    ) -> None:
        region = self.ids.where("region").select("id", "key")
        groups.join(region, "id").select("key", "group").write.mode("overwrite").parquet(
            f"{outputs}/groups"
        )
        shared.join(self.keys, "id").select(
            "key", F.col("kind").cast("byte").alias("kind"), "type", "count", "limit", "examples"
        ).write.mode("overwrite").parquet(f"{outputs}/shared")
        named = (
            links.where(F.col("verdict") != 0)
            .join(graphwide.end(self.keys, "a", a_key="key"), "a")
            .join(graphwide.end(self.keys, "b", b_key="key"), "b")
        )
        named.select(
            "a_key",
            "b_key",
            F.col("verdict").cast("byte").alias("verdict"),
            "conflict_type",
            "conflict_limit",
            "conflict_identifiers",
        ).write.mode("overwrite").parquet(f"{outputs}/verdicts")
        quarantined.coalesce(1).write.mode("overwrite").parquet(f"{outputs}/quarantined")
        if calls is None:
            calls = self.spark.createDataFrame([], per_component.DEVICES)
        ends = (
            links.select("id", "a", "b")
            .join(graphwide.end(self.keys, "a", ka="key"), "a")
            .join(graphwide.end(self.keys, "b", kb="key"), "b")
        )
        _describe_calls(calls, ends).coalesce(1).write.mode("overwrite").parquet(
            f"{outputs}/devices"
        )
        self.counts["groups"] = groups.select("group").distinct().count()


def _describe_calls(calls: DataFrame, ends: DataFrame) -> DataFrame:
    """The device calls with the keys of the links each refuses (``refused_a``, ``_b``)."""
    numbered = calls.withColumn("call", F.monotonically_increasing_id()).localCheckpoint()
    refused = (
        numbered.select("call", F.explode("refused").alias("id"))
        .join(ends, "id")
        .groupBy("call")
        .agg(F.collect_list(F.struct("ka", "kb")).alias("pairs"))
    )
    return numbered.join(refused, "call", "left").select(
        "type",
        "device",
        "kept",
        "other",
        "split",
        F.coalesce(F.col("pairs.ka"), F.array().cast("array<string>")).alias("refused_a"),
        F.coalesce(F.col("pairs.kb"), F.array().cast("array<string>")).alias("refused_b"),
    )


def _union(frames: list[DataFrame]) -> DataFrame:
    first, *rest = frames
    for frame in rest:
        first = first.unionByName(frame)
    return first


def _exclude(links: DataFrame, shared: DataFrame, among: str) -> DataFrame:
    """Links ``among`` (a column) with a shared end become SHARED unless forced; the others
    stay ``eligible``."""
    marks = shared.select("id").distinct()
    end_a = marks.select(F.col("id").alias("a"), F.lit(True).alias("shared_a"))
    end_b = marks.select(F.col("id").alias("b"), F.lit(True).alias("shared_b"))
    joined = links.join(end_a, "a", "left").join(end_b, "b", "left")
    touched = F.coalesce("shared_a", "shared_b", F.lit(False))
    eligible = F.col(among) & ~touched
    verdict = F.when(F.col(among) & touched & ~F.col("forced_c"), SHARED).otherwise(
        F.col("verdict")
    )
    return joined.select(
        *[c for c in links.columns if c not in ("verdict", "eligible")],
        verdict.alias("verdict"),
        eligible.alias("eligible"),
    )


def _refuse(links: DataFrame, refused: DataFrame | None, verdict: int) -> DataFrame:
    """The links ``refused`` (ids; None: all of ``links``) get ``verdict`` unless forced
    (DEVICE), or whatever they are (QUARANTINED, LIMIT: eligible links only), and stop being
    eligible."""
    if refused is None:
        hit = F.col("eligible")
        frame = links
    else:
        marks = refused.select("id").distinct().withColumn("hit", F.lit(True))
        frame = links.join(marks, "id", "left")
        hit = F.coalesce("hit", F.lit(False)) & F.col("eligible")
    if verdict == DEVICE:
        hit = hit & ~F.col("forced_c")
    return frame.select(
        *[c for c in links.columns if c not in ("verdict", "eligible")],
        F.when(hit, verdict).otherwise(F.col("verdict")).alias("verdict"),
        (F.col("eligible") & ~hit).alias("eligible"),
    )


def run(spark: SparkSession, inputs: str, outputs: str) -> dict[str, Any]:
    """Run the job on ``inputs``, writing ``outputs``; returns its summary."""
    return Job(spark, inputs, Rules.read(inputs)).run(outputs)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="identity.engines.spark.job",
        description="Resolve identities on Spark: an input directory written by "
        "`idgraph export links --format parquet`, an output directory for "
        "`idgraph import memberships`.",
    )
    parser.add_argument("inputs")
    parser.add_argument("outputs")
    parser.add_argument("--master", default=None, help="Spark master (default: as submitted)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    builder = SparkSession.builder.appName("idgraph resolve")
    if args.master:
        builder = builder.master(args.master)
    spark = builder.getOrCreate()
    summary = run(spark, args.inputs, args.outputs)
    log.info("done: %s", summary)


if __name__ == "__main__":
    main()
