"""idgraph: graph-based customer identity resolution on Neo4j."""

__version__ = "0.1.0"
