"""The audit text every recorded action carries: who did it and why (steward actions,
erasures), checked the same way wherever it is recorded."""

from __future__ import annotations

from identity.errors import InputError

MAX_REASON = 500
MAX_ACTOR = 200


def audit_text(name: str, value: str, limit: int, *, needed_by: str, kept_in: str) -> str:
    """``value`` stripped, when not empty and at most ``limit`` characters long: a reason or an
    actor recorded with an action (steward action, erasure); InputError otherwise."""
    text = value.strip()
    if not text:
        raise InputError(f"{needed_by} needs a non-empty {name} (kept in {kept_in})")
    if len(text) > limit:
        raise InputError(f"{name} is {len(text)} characters long: at most {limit}")
    return text
