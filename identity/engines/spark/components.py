"""Connected components as DataFrame operations: large-star / small-star.

R. Kiveris, S. Lattanzi, V. Mirrokni, V. Rastogi and S. Vassilvitskii, "Connected Components
in MapReduce and Beyond", SoCC 2014. Edges are kept once, as (``big``, ``small``) with
``big > small``; each round is two steps, each one aggregation and one join:

- *large-star*: every node ``u`` links its larger neighbours to the smallest of its
  neighbourhood (itself included), ``m(u)``;
- *small-star*: every node links itself and its smaller neighbours to the smallest of them.

Neither step changes the components, and both move edges towards smaller ids; when every
edge joins a node to a root (no smaller neighbour) and every node has one edge, each
component is a star around its smallest id: that id is the component's label. The number of
rounds grows as the logarithm of the components' diameter (O(log^2 n) in the worst case);
each round's edges are check-pointed locally, so the plan never grows with the rounds. The
graph is never collected to the driver: the driver sees two counts per round.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

log = logging.getLogger(__name__)

MAX_ROUNDS = 100  # far above what a real graph needs (rounds ~ log of the diameter)


@dataclass
class Labels:
    """Each node's component (``id``, ``label`` = the smallest id of its component), and how
    many rounds it took."""

    frame: DataFrame
    rounds: int


def components(nodes: DataFrame, edges: DataFrame, what: str = "components") -> Labels:
    """The components of ``nodes`` (column ``id``) over ``edges`` (columns ``a``, ``b``)."""
    current = (
        edges.where(F.col("a") != F.col("b"))
        .select(
            F.greatest("a", "b").alias("big"),
            F.least("a", "b").alias("small"),
        )
        .distinct()
        .localCheckpoint()
    )
    rounds = 0
    while current.take(1):
        rounds += 1
        if rounds > MAX_ROUNDS:
            raise RuntimeError(f"{what}: no convergence after {MAX_ROUNDS} rounds")
        current = _small_star(_large_star(current)).localCheckpoint()
        if _is_star_forest(current):
            break
    log.info("%s: %d rounds of large-star/small-star", what, rounds)
    labels = nodes.select("id").join(
        current.select(F.col("big").alias("id"), F.col("small").alias("root")), "id", "left"
    )
    frame = labels.select("id", F.coalesce("root", "id").alias("label"))
    return Labels(frame=frame, rounds=rounds)


def _both_ways(edges: DataFrame) -> DataFrame:
    return edges.select(F.col("big").alias("u"), F.col("small").alias("v")).unionByName(
        edges.select(F.col("small").alias("u"), F.col("big").alias("v"))
    )


def _large_star(edges: DataFrame) -> DataFrame:
    """Each node's larger neighbours, linked to the smallest of its neighbourhood (repeated
    edges are left in: small-star takes minima, then removes repeats)."""
    both = _both_ways(edges)
    smallest = both.groupBy("u").agg(F.least(F.min("v"), F.col("u")).alias("m"))
    return (
        both.where(F.col("v") > F.col("u"))
        .join(smallest, "u")
        .select(F.col("v").alias("big"), F.col("m").alias("small"))
    )


def _small_star(edges: DataFrame) -> DataFrame:
    """Each node and its smaller neighbours, linked to the smallest of those."""
    smallest = edges.groupBy("big").agg(F.min("small").alias("m"))
    moved = (
        edges.join(smallest, "big")
        .where(F.col("small") != F.col("m"))
        .select(F.col("small").alias("big"), F.col("m").alias("small"))
    )
    return moved.unionByName(smallest.select("big", F.col("m").alias("small"))).distinct()


def _is_star_forest(edges: DataFrame) -> bool:
    """Every node has one edge, to a node with no smaller neighbour: stars around roots."""
    row = edges.agg(F.count("*").alias("edges"), F.countDistinct("big").alias("leaves")).first()
    if row is None or row["edges"] != row["leaves"]:
        return False
    leaves = edges.select(F.col("big").alias("small"))
    return not edges.join(leaves, "small", "left_semi").take(1)
