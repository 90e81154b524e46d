"""GraphQL errors: expected ones carry a code, unexpected ones are masked.

Codes (``extensions.code``): ``UNAUTHENTICATED``, ``FORBIDDEN``, ``BAD_USER_INPUT``,
``NOT_FOUND``, ``QUERY_TOO_COMPLEX``, ``RATE_LIMITED``, ``REQUEST_TOO_LARGE``,
``SERVICE_UNAVAILABLE``, ``CONFLICT`` (a resolve holds the lock, a name is taken),
``GRAPHQL_VALIDATION_FAILED``, ``INTERNAL_SERVER_ERROR``. Every error also carries
``extensions.request_id``; an internal error's message is replaced by "internal error" and
the exception is logged under that id.
"""

from __future__ import annotations

from identity.errors import (
    ConflictError,
    InputError,
    NotFoundError,
    ResolveBusyError,
    StoreUnavailableError,
)
from identity.normalize import NormalizationError


class ApiError(Exception):
    """An expected failure, shown to the caller with its code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def code_of(error: BaseException | None) -> str | None:
    """The code of an expected failure, None for an internal one."""
    if isinstance(error, ApiError):
        return error.code
    if isinstance(error, NotFoundError):
        return "NOT_FOUND"
    if isinstance(error, InputError | NormalizationError):
        return "BAD_USER_INPUT"
    if isinstance(error, StoreUnavailableError):
        return "SERVICE_UNAVAILABLE"
    if isinstance(error, ResolveBusyError | ConflictError):
        return "CONFLICT"
    return None


__all__ = ["ApiError", "code_of"]
