"""Hashing an audience's identifiers the way each ad platform matches them.

SHA-256, lower-case hex, of the value normalized as the destination asks.
Google Customer Match (Google Ads API "Customer Match"; DV360 "Prepare user data"): email
trimmed and lower-cased (removing gmail.com dots is *not required* there, only for Enhanced
Conversions / CM360, so they are kept); phone in E.164 *with* ``+``. Meta Custom Audiences
(Marketing API, customer information parameters): email trimmed and lower-cased; phone digits
with country code, no ``+``, no leading zeros. Other types go as stored (both platforms take raw
mobile advertising ids; cookies and partner ids go to DMPs and ad servers as they are).
Identifiers stored hashed (``IDGRAPH_HASH_PII``: SHA-256 of the Google form) go as they are
where that is the destination's form (emails; phones for Google), else they are skipped and
counted (``skipped_hashed``).
"""

from __future__ import annotations

import re
from typing import Literal, get_args

from identity.normalize import sha256_hex

Destination = Literal["google", "meta"]
DESTINATIONS: tuple[Destination, ...] = get_args(Destination)
HASHED_TYPES = frozenset({"email", "phone"})  # what the platforms want hashed
_NOT_DIGITS = re.compile(r"\D")


def normalized_for(destination: Destination, type_: str, value: str) -> str:
    """``value`` (as idgraph stores it) in the form ``destination`` hashes."""
    if type_ == "email":
        return value.strip().lower()
    if type_ == "phone":
        digits = _NOT_DIGITS.sub("", value).lstrip("0")
        return "+" + digits if destination == "google" else digits
    return value


def hashed_for(destination: Destination, type_: str, value: str) -> str:
    """SHA-256 (lower-case hex) of ``value`` normalized for ``destination``."""
    return sha256_hex(normalized_for(destination, type_, value))
