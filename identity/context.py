"""What a service works with, said once: the graph, the settings, the policy, who acts.

A command (:mod:`identity.cli`) or a request (:mod:`identity.api`) builds one
:class:`ServiceContext` and passes it as the first argument of every service it calls, as
Netflix's dispatch passes its database session; services take from it what they need and
keep their own parameters for what the call is about (a reason, a segment, a file).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from identity.config import Settings
from identity.normalize import Normalizer, make_normalizer
from identity.policy import Policy
from identity.store.driver import Graph


@dataclass(frozen=True)
class ServiceContext:
    """The resources of one command or request.

    ``actor`` names who acts, as recorded with what they do (a steward action, an erasure, a
    segment); None leaves each service its own default (``idgraph resolve (full)``, ...).
    ``normalizer`` is built once from the settings and the policy: it memoizes.
    """

    graph: Graph
    settings: Settings
    policy: Policy
    normalizer: Normalizer
    actor: str | None = None

    @classmethod
    def create(
        cls, graph: Graph, settings: Settings, policy: Policy, *, actor: str | None = None
    ) -> ServiceContext:
        return cls(graph, settings, policy, make_normalizer(settings, policy), actor)

    def acting_as(self, actor: str) -> ServiceContext:
        """The same resources on behalf of ``actor`` (an API key's name, a CLI user)."""
        return replace(self, actor=actor)
