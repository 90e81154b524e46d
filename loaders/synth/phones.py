"""Distinct, valid French mobile numbers, and the ways people write them.

The last 7 digits come from a bijection of the person index (multiply by a constant coprime with
the number space, add a seeded offset, modulo the space), so every person has a distinct number
without remembering the numbers already given.
"""

from __future__ import annotations

# Valid French mobile prefixes: 6 or 7 and the next digit.
_PHONE_HEADS = (
    "60",
    "61",
    "62",
    "64",
    "65",
    "66",
    "67",
    "68",
    "73",
    "74",
    "75",
    "76",
    "77",
    "78",
    "79",
)
_PHONE_SPACE = len(_PHONE_HEADS) * 10**7
_PHONE_MULTIPLIER = 7_919_113  # coprime with _PHONE_SPACE (2**7 * 3 * 5**8)


def _phone_number(index: int, offset: int) -> str | None:
    """The E.164 mobile of person ``index``; None for placeholder-looking numbers."""
    head, rest = divmod((index * _PHONE_MULTIPLIER + offset) % _PHONE_SPACE, 10**7)
    tail = f"{_PHONE_HEADS[head][1]}{rest:07d}"
    if len(set(tail)) < 4 or tail in "01234567890" or tail in "98765432109":
        return None
    return f"+33{_PHONE_HEADS[head][0]}{tail}"


def _phone_formats(e164: str) -> tuple[str, ...]:
    """``+33612345678`` as ``06 12 34 56 78``, ``0612345678``, ``+33 6 12 34 56 78``, ..."""
    nsn = e164[3:]
    spaced = f"{nsn[0]} {_pairs(nsn[1:])}"
    return (f"0{spaced}", f"0{nsn}", f"+33 {spaced}", f"0033{nsn}", e164)


def _pairs(digits: str) -> str:
    return " ".join(digits[i : i + 2] for i in range(0, len(digits), 2))
