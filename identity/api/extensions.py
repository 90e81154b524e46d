"""Schema extensions: error coding and masking, the operation label for metrics, and the
delivery worker woken after a mutation."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from graphql import (
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    GraphQLError,
    OperationDefinitionNode,
)
from starlette.websockets import WebSocket
from strawberry.extensions import SchemaExtension
from strawberry.types import ExecutionContext
from strawberry.types.graphql import OperationType

from identity.api.errors import ApiError, code_of
from identity.api.limits import operation_cost
from identity.api.observability import request_id

log = logging.getLogger("idgraph.api")


class CodedErrors(SchemaExtension):
    """Give every error its code and the request id; mask and log the unexpected ones."""

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if result is None or not result.errors:
            return
        context = self.execution_context.context
        metrics = getattr(context, "request", None)
        rid = request_id.get()
        coded: list[GraphQLError] = []
        for error in result.errors:
            original = error.original_error
            code = code_of(original)
            message = error.message
            extensions = dict(error.extensions or {})
            if original is None:
                depth = "exceeds maximum operation depth" in message
                code = extensions.get("code") or (
                    "QUERY_TOO_COMPLEX" if depth else "GRAPHQL_VALIDATION_FAILED"
                )
            elif code is None:
                log.error(
                    "internal error in %s",
                    error.path,
                    exc_info=(type(original), original, original.__traceback__),
                )
                code, message = "INTERNAL_SERVER_ERROR", f"internal error (request id {rid})"
            elif code == "SERVICE_UNAVAILABLE":
                message = "Neo4j is unavailable: try again shortly"
                log.warning("Neo4j unavailable: %s", original)
            extensions.update(code=code, request_id=rid)
            coded.append(
                GraphQLError(
                    message,
                    nodes=error.nodes,
                    source=error.source,
                    positions=error.positions,
                    path=error.path,
                    original_error=None,
                    extensions=extensions,
                )
            )
            if metrics is not None:
                metrics.state.metrics.graphql_errors.labels(code).inc()
        result.errors = coded


def _operation(execution: ExecutionContext) -> OperationDefinitionNode | None:
    """The operation being run (the one named, or the only one)."""
    document = execution.graphql_document
    if document is None:
        return None
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode) and (
            execution.operation_name is None
            or (definition.name and definition.name.value == execution.operation_name)
        ):
            return definition
    return None


def _refuse(execution: ExecutionContext, error: GraphQLError) -> None:
    """Answer with ``error`` and no data; nothing is executed."""
    execution.result = ExecutionResult(data=None, errors=[error])


class Gate(SchemaExtension):
    """Before anything runs:

    - name the request after its top-level fields (``profile``, ``profile+stats``) for
      metrics and logs: bounded by the schema, unlike client-chosen operation names;
    - refuse the whole operation, with no data at all, when no API key was sent and it asks
      for more than the schema (introspection stays open for GraphiQL);
    - refuse it when it costs more than ``IDGRAPH_API_MAX_COST`` (see :mod:`limits`).
    """

    def __init__(self, *, max_cost: int, max_page: int) -> None:
        self.max_cost = max_cost
        self.max_page = max_page

    def on_execute(self) -> Iterator[None]:
        execution = self.execution_context
        context = execution.context
        operation = _operation(execution)
        if operation is None:
            yield
            return
        names = {
            s.name.value for s in operation.selection_set.selections if isinstance(s, FieldNode)
        }
        label = "+".join(sorted(names)[:3]) or "-"
        context.request.scope["state"]["operation"] = label
        if context.principal is None and any(not n.startswith("__") for n in names):
            _refuse(
                execution,
                GraphQLError(
                    "no API key: send Authorization: Bearer KEY with a key from IDGRAPH_API_KEYS",
                    extensions={"code": "UNAUTHENTICATED"},
                ),
            )
            yield
            return
        document = execution.graphql_document
        fragments = {
            d.name.value: d
            for d in (document.definitions if document else ())
            if isinstance(d, FragmentDefinitionNode)
        }
        cost = operation_cost(
            execution.schema._schema,
            operation,
            fragments,
            execution.variables or {},
            self.max_page,
        )
        if cost > self.max_cost:
            name = operation.name.value if operation.name else "anonymous"
            _refuse(
                execution,
                GraphQLError(
                    f"operation {name} costs {cost}, over the limit of {self.max_cost} "
                    "(IDGRAPH_API_MAX_COST): ask for smaller pages or fewer nested lists",
                    extensions={"code": "QUERY_TOO_COMPLEX", "cost": cost, "limit": self.max_cost},
                ),
            )
        yield


class WakeAfterMutations(SchemaExtension):
    """After a mutation (its changes committed), the delivery worker looks at the outbox at
    once rather than at its next poll: webhooks and subscriptions hear of a steward action
    or an erasure made through the API sooner. Also: a WebSocket carries subscriptions only
    (queries and mutations go by POST, through the body limit and the rate limit)."""

    def on_execute(self) -> Iterator[None]:
        request = getattr(self.execution_context.context, "request", None)
        if (
            isinstance(request, WebSocket)
            and self.execution_context.operation_type is not OperationType.SUBSCRIPTION
        ):
            raise ApiError(
                "BAD_REQUEST",
                "only subscriptions over WebSocket: send queries and mutations by POST",
            )
        yield
        if self.execution_context.operation_type is not OperationType.MUTATION:
            return
        request = getattr(self.execution_context.context, "request", None)
        wake = getattr(getattr(request, "state", None), "wake_outbox", None)
        if wake is not None:
            wake()
