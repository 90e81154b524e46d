"""Resolution engines other than the default, in-memory one (:mod:`identity.resolve.engine`).

An engine computes the same :class:`~identity.resolve.engine.Resolution` from the same
:class:`~identity.resolve.graph.LinkGraph`; what is written from it (lineage, events,
profiles) is the same code whichever engine ran (docs/architecture.md, "Resolution engines").
"""
