"""Limits that keep one caller from taking the server down: request rate, query cost.

**Rate**: a token bucket per API key (per client address without one), refilled at
``IDGRAPH_API_RATE_LIMIT`` tokens a second up to a burst of twice that.

**Cost**: each field costs 1, times the page size asked for by every page above it
(``first``, or the default page). ``profile { identifiers(first: 100) { edges { node {
links(first: 100) ...`` costs about 10,000 per field under the inner page: it is refused
before it runs when over ``IDGRAPH_API_MAX_COST``. Variables are known by then (a bad page
size is left to the field, which refuses it). Fragments are expanded; introspection is free.
Query depth has its own limit (strawberry's ``QueryDepthLimiter``).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    ListValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
    get_named_type,
)

DEFAULT_PAGE = 50


class RateLimiter:
    """Token buckets by caller; ``take`` returns 0 when allowed, else the seconds to wait."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.burst = max(1.0, 2 * rate)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, caller: str) -> float:
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        with self._lock:
            tokens, at = self._buckets.get(caller, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.rate)
            if tokens < 1:
                self._buckets[caller] = (tokens, now)
                return (1 - tokens) / self.rate
            self._buckets[caller] = (tokens - 1, now)
            if len(self._buckets) > 10_000:  # forget idle callers
                self._buckets = {
                    k: v for k, v in self._buckets.items() if now - v[1] < 60 or k == caller
                }
            return 0.0


def operation_cost(
    schema: GraphQLSchema,
    operation: OperationDefinitionNode,
    fragments: dict[str, FragmentDefinitionNode],
    variables: dict[str, Any],
    max_page: int,
) -> int:
    """What an operation may cost, with its variables known (see the module docstring).

    A field returning a ``...Connection`` multiplies what is under it by its page (``first``,
    else the default page); a list field asked for by ``ids``/``identifiers`` by the length
    of that list."""
    root = schema.get_root_type(operation.operation)
    return _cost(operation.selection_set, root, 1, fragments, variables, max_page, frozenset())


def _cost(
    selections: SelectionSetNode | None,
    parent: GraphQLNamedType | None,
    multiplier: int,
    fragments: dict[str, FragmentDefinitionNode],
    variables: dict[str, Any],
    max_page: int,
    seen: frozenset[str],
) -> int:
    if selections is None or not isinstance(parent, GraphQLObjectType):
        return 0
    total = 0
    for selection in selections.selections:
        if isinstance(selection, FieldNode):
            field = parent.fields.get(selection.name.value)
            if field is None:  # introspection
                continue
            returns = get_named_type(field.type)
            page = _page_size(selection, returns.name, variables, max_page)
            total += multiplier
            inner = multiplier * page if page else multiplier
            total += _cost(
                selection.selection_set, returns, inner, fragments, variables, max_page, seen
            )
        elif isinstance(selection, InlineFragmentNode):
            total += _cost(
                selection.selection_set, parent, multiplier, fragments, variables, max_page, seen
            )
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = fragments.get(name)
            if fragment is not None and name not in seen:
                total += _cost(
                    fragment.selection_set,
                    parent,
                    multiplier,
                    fragments,
                    variables,
                    max_page,
                    seen | {name},
                )
    return total


def _page_size(
    field: FieldNode, returns: str, variables: dict[str, Any], max_page: int
) -> int | None:
    """How many items a field may return; None when it is not a page or a bulk lookup."""
    connection = returns.endswith("Connection")
    for argument in field.arguments or ():
        value: Any = argument.value
        if isinstance(value, VariableNode):
            value = variables.get(value.name.value)
        elif isinstance(value, IntValueNode):
            value = int(value.value)
        elif isinstance(value, ListValueNode):
            value = value.values
        if connection and argument.name.value == "first":
            return max(1, min(value, max_page)) if isinstance(value, int) else DEFAULT_PAGE
        if argument.name.value in ("ids", "identifiers"):
            return max(1, min(len(value), max_page)) if isinstance(value, list | tuple) else 1
    return DEFAULT_PAGE if connection else None
