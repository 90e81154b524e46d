"""The state of one run: the random stream, the open writers, what the truth file already holds.

Also the two records a run is made of: a person (``_Person``) and a place where sessions happen
(``_Touch``). Nothing here decides what to generate; ``people``, ``events`` and ``tables`` do.
"""

from __future__ import annotations

import json
import random
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

from .config import SynthConfig
from .phones import _PHONE_SPACE
from .rates import (
    JUNK,
    JUNK_ANONYMOUS_IDS,
    KIOSK_MIN_USERS,
    MIN_PEOPLE_FOR_FORCED,
    SHARED,
    TEST_EMAIL,
    TEST_EMAIL_MIN_USERS,
    ZERO_MAID,
)

if TYPE_CHECKING:
    from _csv import Writer

_T = TypeVar("_T")

_DMP_RING = 1_000
_DAY_MS = 86_400_000
_HOUR_MS = 3_600_000
_MINUTE_SECOND = tuple(f"{s // 60:02d}:{s % 60:02d}." for s in range(3600))
_UUID_CLEAR = ~((0xF << 76) | (0x3 << 62))  # version and variant bits of a random UUID
_UUID_SET = (4 << 76) | (2 << 62)


@dataclass(slots=True)
class _Touch:
    """Where a session happens: a browser (rotating cookies), an app install, the kiosk."""

    web: bool
    anonymous_id: str = ""
    context: dict[str, Any] = field(default_factory=dict)
    context_json: str = ""
    maid: str | None = None
    lifetime_ms: int = 0
    phase_ms: int = 0
    cookies: dict[int, str] = field(default_factory=dict)


@dataclass(slots=True)
class _Person:
    pid: str
    crm_id: str | None
    first: str
    last: str
    email: str
    phone: str | None
    city: str
    consent_marketing: bool
    consent_ads: bool
    dmp_id: str | None
    browsers: list[_Touch]
    apps: list[_Touch]
    # one person, two emails: from ``email_change_ms`` on, they write ``second_email``
    second_email: str | None = None
    email_change_ms: int = 0

    def email_at(self, t: int) -> str:
        """The email the person writes at ``t`` (ms from the start)."""
        if self.second_email is not None and t >= self.email_change_ms:
            return self.second_email
        return self.email


class _Run:
    """The state of one run: the random stream, the open writers, what truth already holds."""

    def __init__(
        self,
        config: SynthConfig,
        events: TextIO,
        crm: Writer,
        dmp: Writer,
        truth: Writer,
        cases: Writer,
    ) -> None:
        self.config = config
        self.rng = rng = random.Random(config.seed)
        self.events_file = events
        self.crm = crm
        self.dmp = dmp
        self.truth = truth
        self.cases = cases
        self.encode = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode
        start = config.start if config.start.tzinfo else config.start.replace(tzinfo=UTC)
        self.base_ms = int(start.timestamp() * 1000)
        self.window_ms = config.days * _DAY_MS
        self.hour_prefix: dict[int, str] = {}
        self.width = max(6, len(str(max(config.people - 1, 0))))
        self.phone_offset = rng.randrange(_PHONE_SPACE)
        self.fixed: set[tuple[str, str]] = set()
        self.seen: set[tuple[str, str]] = set()
        self.dmp_ring: deque[str] = deque(maxlen=_DMP_RING)
        self.household: _Touch | None = None
        self.household_left = 0
        self.household_keys: list[tuple[str, str]] = []
        self.counts = {"events": 0, "crm": 0, "dmp": 0}
        picks = [-1] * (KIOSK_MIN_USERS + TEST_EMAIL_MIN_USERS + 3)
        if config.people >= MIN_PEOPLE_FOR_FORCED:
            picks = rng.sample(range(config.people), len(picks))
        self.forced_kiosk = set(picks[:KIOSK_MIN_USERS])
        self.forced_test = set(picks[KIOSK_MIN_USERS:-3])
        self.forced_partner, self.forced_twin = picks[-3], picks[-2]
        self.forced_household = min(picks[-1], config.people - 3)
        self.kiosk = _Touch(web=True, anonymous_id=self.uuid())
        self.fix("cookie", self.kiosk.anonymous_id, SHARED)
        self.fix("email", TEST_EMAIL, SHARED)
        self.fix("maid", ZERO_MAID, JUNK)
        for junk in JUNK_ANONYMOUS_IDS:
            self.fix("cookie", junk, JUNK)

    def uuid(self) -> str:
        h = (self.rng.getrandbits(128) & _UUID_CLEAR | _UUID_SET).to_bytes(16).hex()
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    def pick(self, items: Sequence[_T]) -> _T:
        return items[int(self.rng.random() * len(items))]

    def below(self, n: int) -> int:
        return int(self.rng.random() * n)

    def ts(self, offset_ms: int) -> str:
        """ISO 8601 UTC with milliseconds, ``offset_ms`` after the start (hour prefix cached)."""
        hour, ms = divmod(self.base_ms + offset_ms, _HOUR_MS)
        prefix = self.hour_prefix.get(hour)
        if prefix is None:
            at = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(hours=hour)
            prefix = self.hour_prefix[hour] = at.strftime("%Y-%m-%dT%H:")
        s, ms = divmod(ms, 1000)
        return f"{prefix}{_MINUTE_SECOND[s]}{ms:03d}Z"

    def fix(self, kind: str, value: str, person: str) -> None:
        """Write a trap identifier to truth once, owned by ``person`` (shared or junk)."""
        if (kind, value) not in self.fixed:
            self.fixed.add((kind, value))
            self.truth.writerow((kind, value, person))

    def emit(self, kind: str, value: str, p: _Person) -> None:
        """Write ``p``'s identifier to truth, unless already written for ``p`` or a trap."""
        key = (kind, value)
        if key not in self.seen and key not in self.fixed:
            self.seen.add(key)
            self.truth.writerow((kind, value, p.pid))
