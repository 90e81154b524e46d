"""Bulk backfill: files turned into a new database with ``neo4j-admin database import``,
leaving the graph ``idgraph load`` leaves (see :mod:`identity.backfill.service`)."""
