"""The Spark engine: identity formation as DataFrame operations (docs/spark.md).

- :mod:`.exchange`: the Parquet files a job reads (identifiers, links, the policy's rules per
  type) and writes (groups, verdicts, shared identifiers, quarantines, device calls), and
  their conversion from and to the in-memory columns;
- :mod:`.job`: the job itself, on any Spark session (``python -m identity.engines.spark.job``
  or ``spark-submit``);
- :mod:`.graphwide`: the rules over the whole graph (candidates, shared identifiers);
- :mod:`.components`: connected components by large-star/small-star;
- :mod:`.per_component`: the rules that look at one component, run with ``applyInPandas``
  by calling :mod:`identity.resolve.local` and :mod:`identity.resolve.devices`;
- :mod:`.engine`: running it from ``idgraph resolve --engine spark``.

pyspark is imported only here, and only when a Spark engine runs (the ``spark`` extra).
"""
