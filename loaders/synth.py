"""Deterministic synthetic data for demos, tests and benchmarks (``idgraph synth``).

One seeded ``random.Random`` drives everything, so a seed always gives the same bytes. People are
generated one at a time and written at once (their events sorted by time, CRM row, DMP rows,
ground truth); nothing is kept across people but the current household's shared identifiers and
a ring of recent DMP partner ids, so memory does not grow with the number of people.

Files: ``events.ndjson[.gz]`` (Segment spec), ``crm.csv`` + ``crm.mapping.toml``, ``dmp.csv`` +
``dmp.mapping.toml``, and ``truth.csv`` (``type,value,person``: each identifier emitted, once,
with its value as a loader normalizes it; person ``shared`` or ``junk`` marks the traps).

Hard cases and their rates (the constants below):

- several browsers per person: one, plus a 2nd at 50% and a 3rd at 20%
  (``EXTRA_BROWSER_RATES``); each rotates its anonymousId every 7 (30% of browsers), 30 (40%) or
  400 days (``COOKIE_LIFETIMES_DAYS``), so people have many cookies; app installs for 40% of
  people (``APP_USER_RATE``, a second one at 15%) with device.id, advertisingId (iOS upper case)
  and their own anonymousId;
- 70% of people are customers (``CUSTOMER_RATE``, crm id ``C0000042``); 45% of a customer's
  sessions log in (``LOGIN_RATE``): identify with userId, anonymousId and traits, then a
  ``Signed In`` track; 5% of logins start with an alias (``ALIAS_RATE``), 5% add a group;
  non-customers type their email in 10% of sessions (``NEWSLETTER_RATE``);
- family tablets: 3% of people (``HOUSEHOLD_RATE``, at least one household) start a household
  of 2-3 consecutive people, all customers, who each log in on one tablet (same device.id, maid
  and anonymousId);
- one kiosk browser (one anonymousId) where 1% of people log in (``KIOSK_USER_RATE``; at least
  ``KIOSK_MIN_USERS`` = 3, made customers);
- ``test@example.com`` typed (identify without userId) on their own cookie by 1% of people
  (``TEST_EMAIL_RATE``; at least ``TEST_EMAIL_MIN_USERS`` = 2);
- all-zero advertising ids on 30% of iOS installs (``ZERO_IDFA_RATE``);
- anonymousId ``"undefined"`` (4 in 5) or ``"null"`` on 0.5% of web events
  (``JUNK_ANONYMOUS_ID_RATE``);
- 25% of written emails (CRM, identify traits) are case/whitespace variants
  (``EMAIL_VARIANT_RATE``): ``" Camille.Martin42@Orange.fr "`` for ``camille.martin42@orange.fr``;
- 80% of people have a valid French mobile (``PHONE_RATE``, +336/+337, distinct per person),
  written as ``06 12 34 56 78``, ``0612345678``, ``+33 6 12 34 56 78``, ``0033612345678`` or
  ``+33612345678``, in the CRM and in 30% of identify traits;
- 50% of people are known to the DMP (``DMP_PERSON_RATE``), 60% of their cookies synced; 5% of
  DMP rows pair the cookie with another person's partner id (``WRONG_DMP_LINK_RATE``).

The minimums apply when people >= ``MIN_PEOPLE_FOR_FORCED`` (50).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import random
from bisect import bisect
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

from identity.errors import ConfigError

if TYPE_CHECKING:
    from _csv import Writer

_T = TypeVar("_T")

CUSTOMER_RATE = 0.70
LOGIN_RATE = 0.45
NEWSLETTER_RATE = 0.10
ALIAS_RATE = 0.05
GROUP_RATE = 0.05
CONTEXT_TRAITS_RATE = 0.20
EXTRA_BROWSER_RATES = (0.5, 0.2)
COOKIE_LIFETIMES_DAYS = (7, 30, 400)
COOKIE_LIFETIME_WEIGHTS = (0.3, 0.4, 0.3)
_COOKIE_LIFETIME_CUMULATIVE = list(accumulate(COOKIE_LIFETIME_WEIGHTS))[:-1]
APP_USER_RATE = 0.40
SECOND_APP_RATE = 0.15
IOS_RATE = 0.50
ZERO_IDFA_RATE = 0.30
HOUSEHOLD_RATE = 0.03
KIOSK_USER_RATE = 0.01
KIOSK_MIN_USERS = 3
TEST_EMAIL_RATE = 0.01
TEST_EMAIL_MIN_USERS = 2
MIN_PEOPLE_FOR_FORCED = 50
JUNK_ANONYMOUS_ID_RATE = 0.005
EMAIL_VARIANT_RATE = 0.25
PHONE_RATE = 0.80
PHONE_IN_IDENTIFY_RATE = 0.30
DMP_PERSON_RATE = 0.50
DMP_SYNC_RATE = 0.60
WRONG_DMP_LINK_RATE = 0.05
DMP_TTL_DAYS = (30, 60, 90)
EXTERNAL_ID_RATE = 0.10
TRACK_RATE = 0.40
MEAN_SESSION_EVENTS = 3.0

SHARED = "shared"
JUNK = "junk"
TEST_EMAIL = "test@example.com"
ZERO_MAID = "00000000-0000-0000-0000-000000000000"
JUNK_ANONYMOUS_IDS = ("undefined", "null")
GZIP_LEVEL = 5
PROGRESS_EVERY = 10_000
_DMP_RING = 1_000
_DAY_MS = 86_400_000
_HOUR_MS = 3_600_000
_MINUTE_SECOND = tuple(f"{s // 60:02d}:{s % 60:02d}." for s in range(3600))
_UUID_CLEAR = ~((0xF << 76) | (0x3 << 62))  # version and variant bits of a random UUID
_UUID_SET = (4 << 76) | (2 << 62)

CRM_COLUMNS = (
    "Customer ID", "E-mail", "Mobile", "First Name", "Last Name", "City", "Country",
    "Marketing Opt-in", "Ads Opt-in", "Updated",
)  # fmt: skip
DMP_COLUMNS = ("cookie", "partner_id", "segments", "ttl_days", "seen_at")
TRUTH_COLUMNS = ("type", "value", "person")

CRM_MAPPING = """\
source = "crm"
party = "first"
timestamp = "Updated"

[identifiers]
"Customer ID" = "crm_id"
"E-mail" = "email"
"Mobile" = "phone"

[traits]
"First Name" = "first_name"
"Last Name" = "last_name"
"City" = "city"
"Country" = "country"
"Marketing Opt-in" = "consent_marketing"
"Ads Opt-in" = "consent_ads"
"""

DMP_MAPPING = """\
source = "dmp"
party = "third"
timestamp = "seen_at"

[identifiers]
"cookie" = "cookie"
"partner_id" = "dmp_id"

[segments]
column = "segments"
separator = "|"
ttl_column = "ttl_days"
"""

FIRST_NAMES = (
    "Camille", "Lea", "Manon", "Chloe", "Emma", "Ines", "Jade", "Louise", "Alice", "Sarah",
    "Lucas", "Hugo", "Louis", "Nathan", "Gabriel", "Jules", "Adam", "Arthur", "Thomas", "Paul",
)  # fmt: skip
LAST_NAMES = (
    "Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy",
    "Moreau", "Simon", "Laurent", "Lefebvre", "Michel", "Garcia", "David", "Bertrand", "Roux",
)  # fmt: skip
DOMAINS = ("gmail.com", "orange.fr", "free.fr", "hotmail.fr", "yahoo.fr", "laposte.net", "sfr.fr")
CITIES = ("Paris", "Lyon", "Marseille", "Toulouse", "Nice", "Nantes", "Bordeaux", "Lille", "Rennes")
SEGMENTS = (
    "travel_intender", "auto_intender", "sports_fan", "young_parents", "home_improvement",
    "luxury_shopper", "gamer", "foodie", "pet_owner", "tech_enthusiast",
)  # fmt: skip
PAGES = ("Home", "Category", "Product", "Cart", "Checkout", "Account")
PRODUCT_EVENTS = ("Product Viewed", "Product Viewed", "Added to Cart", "Order Completed")
_PAGE_BODIES = tuple(f',"name":"{n}","properties":{{"path":"/{n.lower()}"}}' for n in PAGES)
_SCREEN_BODIES = tuple(f',"name":"{n}"' for n in PAGES)
_SIGNED_IN = ',"event":"Signed In","properties":{"method":"password"}'

# Valid French mobile prefixes (6/7 + next digit); the other 7 digits come from a bijection of
# the person index, so every person has a distinct number.
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


@dataclass(frozen=True)
class SynthConfig:
    """What to generate; the same config and seed always give the same bytes."""

    people: int = 1000
    seed: int = 42
    events_per_person: float = 10.0
    start: datetime = datetime(2026, 9, 1, tzinfo=UTC)
    days: int = 60
    gzip: bool = False


@dataclass(frozen=True)
class SynthSummary:
    """Counts of what was written and the files, by name (events, crm, dmp, truth, mappings)."""

    people: int
    events: int
    crm_rows: int
    dmp_rows: int
    files: dict[str, Path]


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


def _phone_number(index: int, offset: int) -> str | None:
    """The E.164 mobile of person ``index``; None for placeholder-looking numbers."""
    head, rest = divmod((index * _PHONE_MULTIPLIER + offset) % _PHONE_SPACE, 10**7)
    tail = f"{_PHONE_HEADS[head][1]}{rest:07d}"
    if len(set(tail)) < 4 or tail in "01234567890" or tail in "98765432109":
        return None
    return f"+33{_PHONE_HEADS[head][0]}{tail}"


def _pairs(digits: str) -> str:
    return " ".join(digits[i : i + 2] for i in range(0, len(digits), 2))


class _Generator:
    """The state of one run: the random stream, the open writers, what truth already holds."""

    def __init__(
        self, config: SynthConfig, events: TextIO, crm: Writer, dmp: Writer, truth: Writer
    ) -> None:
        self.config = config
        self.rng = rng = random.Random(config.seed)
        self.events_file = events
        self.crm = crm
        self.dmp = dmp
        self.truth = truth
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
        picks = [-1] * (KIOSK_MIN_USERS + TEST_EMAIL_MIN_USERS + 1)
        if config.people >= MIN_PEOPLE_FOR_FORCED:
            picks = rng.sample(range(config.people), len(picks))
        self.forced_kiosk = set(picks[:KIOSK_MIN_USERS])
        self.forced_test = set(picks[KIOSK_MIN_USERS:-1])
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
        if (kind, value) not in self.fixed:
            self.fixed.add((kind, value))
            self.truth.writerow((kind, value, person))

    def emit(self, kind: str, value: str, p: _Person) -> None:
        key = (kind, value)
        if key not in self.seen and key not in self.fixed:
            self.seen.add(key)
            self.truth.writerow((kind, value, p.pid))

    def email_text(self, email: str) -> str:
        rng = self.rng
        if rng.random() >= EMAIL_VARIANT_RATE:
            return email
        local, _, domain = email.partition("@")
        styled = ".".join(part.capitalize() for part in local.split("."))
        variants = (
            f" {styled}@{domain.capitalize()} ",
            email.upper(),
            f"{email} ",
            f"  {styled}@{domain}",
        )
        return self.pick(variants)

    def phone_text(self, e164: str) -> str:
        nsn = e164[3:]
        spaced = f"{nsn[0]} {_pairs(nsn[1:])}"
        return self.pick((f"0{spaced}", f"0{nsn}", f"+33 {spaced}", f"0033{nsn}", e164))

    # -- people -------------------------------------------------------------------------------

    def person(self, i: int) -> None:
        rng = self.rng
        self.seen.clear()
        household = None
        if (
            self.household_left == 0
            and i + 1 < self.config.people
            and (i == self.forced_household or rng.random() < HOUSEHOLD_RATE)
        ):
            self.household = self.app_touch(tablet=True)
            self.household_left = min(self.pick((2, 3)), self.config.people - i)
            # Only the current household's identifiers are remembered: members are consecutive.
            self.fixed.difference_update(self.household_keys)
            keys = self.touch_keys(self.household)
            self.household_keys = [key for key in keys if key not in self.fixed]
            for kind, value in self.household_keys:
                self.fix(kind, value, SHARED)
        if self.household_left > 0:
            household = self.household
            self.household_left -= 1
        kiosk = i in self.forced_kiosk or rng.random() < KIOSK_USER_RATE
        test = i in self.forced_test or rng.random() < TEST_EMAIL_RATE
        p = self.new_person(i, customer=household is not None or i in self.forced_kiosk)
        out: list[tuple[int, str]] = []
        mean = self.config.events_per_person
        budget = round(rng.expovariate(1.0 / mean)) if mean > 0 else 0
        touches = p.browsers + p.apps
        while budget > 0:
            size = min(budget, 1 + int(rng.expovariate(1.0 / (MEAN_SESSION_EVENTS - 1))))
            touch = self.pick(touches)
            login = p.crm_id is not None and rng.random() < LOGIN_RATE
            typed = p.email if p.crm_id is None and rng.random() < NEWSLETTER_RATE else None
            budget -= self.session(p, touch, out, size=size, login=login, typed=typed)
        if household is not None:
            self.session(p, household, out, size=2, login=True)
        if kiosk:
            self.session(p, self.kiosk, out, size=2, login=p.crm_id is not None, typed=p.email)
        if test:
            self.session(p, p.browsers[0], out, size=2, login=False, typed=TEST_EMAIL)
        out.sort(key=itemgetter(0))
        self.events_file.write("".join([line for _, line in out]))
        self.counts["events"] += len(out)
        if p.crm_id is not None:
            self.crm_row(p)
        if p.dmp_id is not None:
            self.dmp_rows(p)
            if ("dmp_id", p.dmp_id) in self.seen:
                self.dmp_ring.append(p.dmp_id)

    def new_person(self, i: int, *, customer: bool) -> _Person:
        rng = self.rng
        first, last = self.pick(FIRST_NAMES), self.pick(LAST_NAMES)
        customer = customer or rng.random() < CUSTOMER_RATE
        browsers = [self.web_touch()]
        browsers += [self.web_touch() for rate in EXTRA_BROWSER_RATES if rng.random() < rate]
        apps = []
        if rng.random() < APP_USER_RATE:
            apps.append(self.app_touch())
            if rng.random() < SECOND_APP_RATE:
                apps.append(self.app_touch())
        return _Person(
            pid=f"p{i:0{self.width}d}",
            crm_id=f"C{i:0{self.width + 1}d}" if customer else None,
            first=first,
            last=last,
            email=f"{first.lower()}.{last.lower()}{i}@{self.pick(DOMAINS)}",
            phone=_phone_number(i, self.phone_offset) if rng.random() < PHONE_RATE else None,
            city=self.pick(CITIES),
            consent_marketing=rng.random() < 0.6,
            consent_ads=rng.random() < 0.4,
            dmp_id=f"{rng.getrandbits(64):016x}" if rng.random() < DMP_PERSON_RATE else None,
            browsers=browsers,
            apps=apps,
        )

    def web_touch(self) -> _Touch:
        rng = self.rng
        days = COOKIE_LIFETIMES_DAYS[bisect(_COOKIE_LIFETIME_CUMULATIVE, rng.random())]
        lifetime = days * _DAY_MS
        return _Touch(web=True, lifetime_ms=lifetime, phase_ms=self.below(lifetime))

    def app_touch(self, *, tablet: bool = False) -> _Touch:
        rng = self.rng
        ios = rng.random() < IOS_RATE
        if ios and rng.random() < ZERO_IDFA_RATE:
            maid = ZERO_MAID
        else:
            maid = self.uuid().upper() if ios else self.uuid()
        device = {
            "id": self.uuid(),
            "advertisingId": maid,
            "adTrackingEnabled": maid != ZERO_MAID,
            "type": "ios" if ios else "android",
            "model": ("iPad" if ios else "Galaxy Tab")
            if tablet
            else ("iPhone" if ios else "Pixel"),
        }
        context = {"device": device}
        return _Touch(
            web=False,
            anonymous_id=self.uuid(),
            context=context,
            context_json=f',"context":{self.encode(context)}',
            maid=maid,
        )

    @staticmethod
    def touch_keys(touch: _Touch) -> list[tuple[str, str]]:
        keys = [("cookie", touch.anonymous_id)]
        if touch.maid is not None:
            keys += [("device", touch.context["device"]["id"]), ("maid", touch.maid.lower())]
        return keys

    # -- events -------------------------------------------------------------------------------

    def session(
        self,
        p: _Person,
        touch: _Touch,
        out: list[tuple[int, str]],
        *,
        size: int,
        login: bool,
        typed: str | None = None,
    ) -> int:
        """Append one session's events to ``out`` as (time, JSON line); returns how many.

        Lines are assembled from fragments for speed: every value placed raw is generated here
        from ``[0-9A-Za-z_.:/ -]`` and needs no escaping; traits and context go through json.
        """
        rng = self.rng
        random_ = rng.random
        t = int(random_() * self.window_ms)
        if touch.web and touch.lifetime_ms:
            epoch = (t + touch.phase_ms) // touch.lifetime_ms
            anonymous_id = touch.cookies.get(epoch) or touch.cookies.setdefault(epoch, self.uuid())
        else:
            anonymous_id = touch.anonymous_id
        user = p.crm_id if login else None
        for kind, value in self.touch_keys(touch) if touch.maid else ():
            self.emit(kind, value, p)
        self.emit("cookie", anonymous_id, p)
        context, plain = touch.context, touch.context_json
        if touch.web and p.dmp_id is not None and random_() < EXTERNAL_ID_RATE:
            external = {"id": p.dmp_id, "type": "dmp_id", "collection": "users", "encoding": "none"}
            context = {**context, "externalIds": [external]}
            plain = f',"context":{self.encode(context)}'
            self.emit("dmp_id", p.dmp_id, p)
        with_traits = None
        user_part = ""
        bodies: list[tuple[str, str]] = []
        if user is not None:
            self.emit("crm_id", user, p)
            user_part = f',"userId":"{user}"'
            if random_() < ALIAS_RATE:
                bodies.append(("alias", f',"previousId":"{anonymous_id}"'))
            bodies.append(("identify", f',"traits":{self.encode(self.traits(p))}'))
            bodies.append(("track", _SIGNED_IN))
            if random_() < GROUP_RATE:
                bodies.append(("group", f',"groupId":"acct_{int(random_() * 10_000):04d}"'))
        elif typed is not None:
            if typed != TEST_EMAIL:
                self.emit("email", typed, p)
            traits = self.encode({"email": self.email_text(typed)})
            bodies.append(("identify", f',"traits":{traits}'))
        while len(bodies) < size:
            if random_() < TRACK_RATE:
                bodies.append(("track", self.track()))
            elif touch.web:
                bodies.append(("page", _PAGE_BODIES[int(random_() * len(_PAGE_BODIES))]))
            else:
                bodies.append(("screen", _SCREEN_BODIES[int(random_() * len(_SCREEN_BODIES))]))
        ids = f'"anonymousId":"{anonymous_id}"{user_part}'
        uuid, ts = self.uuid, self.ts
        for kind, body in bodies:
            head = ids
            if touch.web and random_() < JUNK_ANONYMOUS_ID_RATE:
                head = f'"anonymousId":"{JUNK_ANONYMOUS_IDS[random_() >= 0.8]}"{user_part}'
            ctx = plain
            if user is not None and kind != "identify" and random_() < CONTEXT_TRAITS_RATE:
                if with_traits is None:
                    shown = {**context, "traits": {"email": p.email}}
                    with_traits = f',"context":{self.encode(shown)}'
                ctx = with_traits
            line = (
                f'{{"type":"{kind}","messageId":"{uuid()}","timestamp":"{ts(t)}",'
                f"{head}{ctx}{body}}}\n"
            )
            out.append((t, line))
            t += 2_000 + int(random_() * 88_000)
        return len(bodies)

    def traits(self, p: _Person) -> dict[str, Any]:
        traits: dict[str, Any] = {"email": self.email_text(p.email)}
        self.emit("email", p.email, p)
        if p.phone is not None and self.rng.random() < PHONE_IN_IDENTIFY_RATE:
            traits["phone"] = self.phone_text(p.phone)
            self.emit("phone", p.phone, p)
        traits.update(
            first_name=p.first,
            last_name=p.last,
            city=p.city,
            country="FR",
            consent_marketing=p.consent_marketing,
            consent_ads=p.consent_ads,
        )
        return traits

    def track(self) -> str:
        random_ = self.rng.random
        name = PRODUCT_EVENTS[int(random_() * len(PRODUCT_EVENTS))]
        if name != "Order Completed":
            return (
                f',"event":"{name}","properties":{{"product_id":"SKU-{int(random_() * 5000):04d}"}}'
            )
        cents = 1_000 + int(random_() * 29_000)
        order = f"O{self.rng.getrandbits(40):010x}"
        return (
            f',"event":"{name}","properties":{{"order_id":"{order}",'
            f'"revenue":{cents // 100}.{cents % 100:02d},"currency":"EUR"}}'
        )

    # -- tables -------------------------------------------------------------------------------

    def crm_row(self, p: _Person) -> None:
        assert p.crm_id is not None
        self.emit("crm_id", p.crm_id, p)
        self.emit("email", p.email, p)
        mobile = ""
        if p.phone is not None:
            mobile = self.phone_text(p.phone)
            self.emit("phone", p.phone, p)
        updated = self.ts(self.below(self.window_ms))
        marketing, ads = str(p.consent_marketing).lower(), str(p.consent_ads).lower()
        self.crm.writerow(
            (
                p.crm_id,
                self.email_text(p.email),
                mobile,
                p.first,
                p.last,
                p.city,
                "FR",
                marketing,
                ads,
                updated,
            )
        )
        self.counts["crm"] += 1

    def dmp_rows(self, p: _Person) -> None:
        assert p.dmp_id is not None
        rng = self.rng
        for browser in p.browsers:
            for epoch, cookie in browser.cookies.items():
                if rng.random() >= DMP_SYNC_RATE:
                    continue
                set_at = epoch * browser.lifetime_ms - browser.phase_ms
                born = max(0, set_at)
                died = min(self.window_ms, set_at + browser.lifetime_ms)
                partner = p.dmp_id
                if self.dmp_ring and rng.random() < WRONG_DMP_LINK_RATE:
                    partner = self.pick(self.dmp_ring)
                else:
                    self.emit("dmp_id", partner, p)
                segments = "|".join(rng.sample(SEGMENTS, 1 + self.below(3)))
                seen_at = self.ts(born + self.below(died - born))
                self.dmp.writerow((cookie, partner, segments, self.pick(DMP_TTL_DAYS), seen_at))
                self.counts["dmp"] += 1


def generate(
    out_dir: Path, config: SynthConfig, progress: Callable[[int], None] | None = None
) -> SynthSummary:
    """Write a synthetic dataset into ``out_dir`` (created if needed) and count what it holds.

    People are generated and written one at a time, so memory does not grow with
    ``config.people``. ``progress(n)`` is called with the number of events written since its
    previous call, every ``PROGRESS_EVERY`` events or so and once at the end.
    """
    _check(config)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {
        "events": out_dir / ("events.ndjson.gz" if config.gzip else "events.ndjson"),
        "crm": out_dir / "crm.csv",
        "crm_mapping": out_dir / "crm.mapping.toml",
        "dmp": out_dir / "dmp.csv",
        "dmp_mapping": out_dir / "dmp.mapping.toml",
        "truth": out_dir / "truth.csv",
    }
    files["crm_mapping"].write_text(CRM_MAPPING, encoding="utf-8")
    files["dmp_mapping"].write_text(DMP_MAPPING, encoding="utf-8")
    with ExitStack() as stack:
        events = _open_events(stack, files["events"], compress=config.gzip)
        tables = []
        for name, header in (("crm", CRM_COLUMNS), ("dmp", DMP_COLUMNS), ("truth", TRUTH_COLUMNS)):
            handle = stack.enter_context(files[name].open("w", encoding="utf-8", newline=""))
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(header)
            tables.append(writer)
        generator = _Generator(config, events, *tables)
        reported = 0
        for i in range(config.people):
            generator.person(i)
            if progress is not None and generator.counts["events"] - reported >= PROGRESS_EVERY:
                progress(generator.counts["events"] - reported)
                reported = generator.counts["events"]
        if progress is not None and generator.counts["events"] > reported:
            progress(generator.counts["events"] - reported)
    counts = generator.counts
    return SynthSummary(config.people, counts["events"], counts["crm"], counts["dmp"], files)


def _check(config: SynthConfig) -> None:
    if config.people < 0:
        raise ConfigError(f"people: expected 0 or more, got {config.people}")
    if config.days < 1:
        raise ConfigError(f"days: expected 1 or more, got {config.days}")
    if not 0 <= config.events_per_person < math.inf:
        raise ConfigError(f"events_per_person: expected 0 or more, got {config.events_per_person}")


def _open_events(stack: ExitStack, path: Path, *, compress: bool) -> TextIO:
    if not compress:
        return stack.enter_context(path.open("w", encoding="utf-8", newline="\n"))
    raw = stack.enter_context(path.open("wb"))
    # No file name and a zero mtime in the header, so the bytes depend on the seed only.
    packed = stack.enter_context(
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=GZIP_LEVEL)
    )
    return stack.enter_context(io.TextIOWrapper(packed, encoding="utf-8", newline="\n"))
