"""The graph-wide rules of :mod:`identity.resolve.engine` as DataFrame operations.

Rule 1 (candidate links) is a projection of the links joined with their ends; rule 2's
direct and two-hop shared identifiers are aggregations over the links seen from both ends
(``pairs``: ``u``, ``v``, their types, ``u``'s region flag), the two-hop paths one join of
those pairs with themselves. Each function takes and returns DataFrames; the job
(:mod:`identity.engines.spark.job`) decides when to check-point them. Codes and tie-breaks
are the default engine's, so that both write the same notes.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from identity.engines.spark.exchange import Rules
from identity.resolve.engine import BLOCKED, CUT, EXPIRED, MERGED, THIRD_PARTY
from identity.resolve.graph import DIRECT, TWO_HOP
from identity.resolve.local import EXAMPLES

_INT32_MAX = 2**31 - 1
SHARED = "id long, kind int, type string, count long, limit long, examples array<string>"


def at(values: Sequence[object], index: Column, cast: str = "long") -> Column:
    """``values[index]`` for a small per-type list (a literal array in the plan)."""
    array = F.array(*[F.lit(v).cast(cast) for v in values]).cast(f"array<{cast}>")
    return F.element_at(array, index + 1)


def candidates(links: DataFrame, identifiers: DataFrame, rules: Rules) -> DataFrame:
    """Links with their ends' types and the verdict of rule 1: ``verdict`` (MERGED for a
    candidate), ``observed`` (a candidate forced flag aside: what the shared rules judge
    by), ``forced_c`` (a candidate forced by a steward)."""
    joined = links.join(
        end(identifiers, "a", ta="type", blocked_a="blocked", region_a="region"), "a"
    ).join(end(identifiers, "b", tb="type", blocked_b="blocked", region_b="region"), "b")
    ttl = F.least(at(rules.ttl_ms, F.col("ta")), at(rules.ttl_ms, F.col("tb")))  # nulls: none
    expired = ttl.isNotNull() & ((F.lit(rules.as_of_ms) - F.col("last_seen")) > ttl)
    blocked = F.col("blocked_a") | F.col("blocked_b")
    cut = F.col("cut") | (F.col("a") == F.col("b"))
    as_observed = (
        F.when(cut, CUT)
        .when(~F.col("mergeable"), THIRD_PARTY)
        .when(blocked, BLOCKED)
        .when(expired, EXPIRED)
        .otherwise(MERGED)
    )
    forced = F.col("forced") & ~cut
    verdict = F.when(forced, F.when(blocked, BLOCKED).otherwise(MERGED)).otherwise(as_observed)
    return joined.select(
        "id",
        "a",
        "b",
        "ta",
        "tb",
        "region_a",
        "region_b",
        "count",
        "first_seen",
        "last_seen",
        "forced",
        verdict.cast("int").alias("verdict"),
        (as_observed == MERGED).alias("observed"),
        (forced & (verdict == MERGED)).alias("forced_c"),
    )


def end(frame: DataFrame, side: str, **columns: str) -> DataFrame:
    """``frame``'s ``id`` as link end ``side`` (``a`` or ``b``), with its ``columns`` under
    new names (``new="old"``): what joins an end's attributes onto links."""
    return frame.select(
        F.col("id").alias(side), *[F.col(old).alias(new) for new, old in columns.items()]
    )


def both_ways(links: DataFrame) -> DataFrame:
    """``links`` seen from both ends: ``u``, ``v``, their types ``tu``, ``tv`` and region
    flags ``ru``, ``rv``."""
    ends = {"u": "a", "v": "b", "tu": "ta", "tv": "tb", "ru": "region_a", "rv": "region_b"}
    flipped = {"u": "b", "v": "a", "tu": "tb", "tv": "ta", "ru": "region_b", "rv": "region_a"}
    return links.select(*[F.col(old).alias(new) for new, old in ends.items()]).unionByName(
        links.select(*[F.col(old).alias(new) for new, old in flipped.items()])
    )


def pairs(links: DataFrame) -> DataFrame:
    """The observed links seen from both ends (:func:`both_ways`)."""
    return both_ways(links.where("observed"))


def stored(identifiers: DataFrame, kind: int) -> DataFrame:
    """Identifiers outside the region with the stored verdict ``kind`` (kept as stored)."""
    return identifiers.where(~F.col("region") & (F.col("stored") == kind)).select(
        "id",
        F.lit(kind).alias("kind"),
        F.lit(None).cast("string").alias("type"),
        F.lit(None).cast("long").alias("count"),
        F.lit(None).cast("long").alias("limit"),
        F.lit(None).cast("array<string>").alias("examples"),
    )


def direct(pairs_: DataFrame, keys: DataFrame, rules: Rules) -> DataFrame:
    """Region identifiers with more neighbours of a type than its limit (ranking at least
    as high as their own), with the note of the type most over its limit (:data:`SHARED`)."""
    counts = pairs_.where("ru").groupBy("u", "tu", F.col("tv").alias("t")).count()
    return _flag(counts, pairs_.select("u", "v", F.col("tv").alias("t")), keys, rules, DIRECT)


def two_hop(pairs_: DataFrame, direct_ids: DataFrame, keys: DataFrame, rules: Rules) -> DataFrame:
    """Region identifiers, not direct-shared, that reach more anchors of a type than its
    limit within two links, through neighbours that are neither anchors nor direct-shared."""
    anchor = at(rules.anchor, F.col("tv"), "boolean")
    flagged = direct_ids.select(F.col("id").alias("v"), F.lit(True).alias("v_direct"))
    marked = pairs_.join(flagged, "v", "left").where(F.col("v_direct").isNull())
    to_anchor = marked.where(anchor).select("u", "tu", "ru", "v", F.col("tv").alias("t"))
    through = marked.where(~anchor).select("u", "tu", "ru", F.col("v").alias("via"))
    onward = to_anchor.select(F.col("u").alias("via"), "v", "t")
    reach = (
        through.join(onward, "via")
        .select("u", "tu", "ru", "v", "t")
        .unionByName(to_anchor)
        .where(F.col("u") != F.col("v"))
        .distinct()
    )
    judged = reach.where("ru").join(direct_ids.select(F.col("id").alias("u")), "u", "left_anti")
    counts = judged.groupBy("u", "tu", "t").count()
    return _flag(counts, reach.select("u", "v", "t"), keys, rules, TWO_HOP)


def _flag(
    counts: DataFrame, reached: DataFrame, keys: DataFrame, rules: Rules, kind: int
) -> DataFrame:
    """From ``counts`` (``u``, ``tu``, ``t``, ``count``: distinct identifiers of type ``t``
    that ``u`` reaches), the identifiers over a limit, each with its note: the type with the
    largest excess (the lowest type index on a tie) and the first keys of that type."""
    limit = at(rules.limits, F.col("t"))
    outranks = at(rules.priority, F.col("t")) >= at(rules.priority, F.col("tu"))
    over = counts.where(limit.isNotNull() & (F.col("count") > limit) & outranks).select(
        "u",
        "t",
        "count",
        limit.alias("limit"),
        (F.col("count") - F.least(limit, F.lit(_INT32_MAX))).alias("excess"),
    )
    best = over.groupBy("u").agg(
        F.min(F.struct((-F.col("excess")).alias("k"), "t", "count", "limit")).alias("best")
    )
    chosen = best.select(
        F.col("u"), F.col("best.t").alias("t"), F.col("best.count"), F.col("best.limit")
    )
    named = keys.select(F.col("id").alias("v"), "key")
    examples = (
        reached.join(chosen.select("u", "t"), ["u", "t"], "left_semi")
        .join(named, "v")
        .groupBy("u")
        .agg(F.slice(F.array_sort(F.collect_set("key")), 1, EXAMPLES).alias("examples"))
    )
    return chosen.join(examples, "u").select(
        F.col("u").alias("id"),
        F.lit(kind).alias("kind"),
        at(rules.types, F.col("t"), "string").alias("type"),
        "count",
        "limit",
        "examples",
    )
