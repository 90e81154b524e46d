"""Deterministic synthetic data for demos, tests and benchmarks (``idgraph synth``).

One seeded ``random.Random`` drives everything, so a seed always gives the same bytes. People are
generated one at a time and written at once (their events sorted by time, CRM row, DMP rows,
ground truth); nothing is kept across people but the current household's shared identifiers and
a ring of recent DMP partner ids, so memory does not grow with the number of people.

Files: ``events.ndjson[.gz]`` (Segment spec), ``crm.csv`` + ``crm.mapping.toml``, ``dmp.csv`` +
``dmp.mapping.toml``, ``truth.csv`` (``type,value,person``: each identifier emitted, once,
with its value as a loader normalizes it; person ``shared`` or ``junk`` marks the traps), and
``cases.csv`` (``person,case``: the people in the hard cases below that evaluation reports
apart: ``partner_host``, ``partner``, ``twin``).

Hard cases and their rates (the constants in ``rates.py``, re-exported here):

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
- two people on one device (``cases``): 0.6% of people (``PARTNER_RATE``, at least one) are
  customers with an app install of their own on which a partner, known only by an email,
  signs in to a newsletter 2-4 times between the customer's logins (half of the partners also
  typed it in a browser of their own); the device is the customer's in the truth, the partner
  a person of their own (``p000042-partner``);
- its innocent twin: 0.6% of people (``TWIN_RATE``, at least one) change their email address
  once, at a random time in the middle of the window: before it they write one everywhere,
  after it the other, each at least once on an app install of theirs;
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

Modules: ``people`` (persons, browsers, apps, households, written ids), ``phones`` (distinct
mobiles), ``events`` (Segment sessions), ``tables`` (CRM, DMP, mappings, truth columns),
``state`` (the random stream and the truth already written), ``dataset`` (``generate``).
"""

from __future__ import annotations

from .config import SynthConfig, SynthSummary
from .dataset import GZIP_LEVEL, PROGRESS_EVERY, generate
from .events import PAGES, PRODUCT_EVENTS
from .people import CITIES, DOMAINS, FIRST_NAMES, LAST_NAMES
from .phones import _phone_number as _phone_number  # tested directly
from .rates import (
    ALIAS_RATE,
    APP_USER_RATE,
    CONTEXT_TRAITS_RATE,
    COOKIE_LIFETIME_WEIGHTS,
    COOKIE_LIFETIMES_DAYS,
    CUSTOMER_RATE,
    DMP_PERSON_RATE,
    DMP_SYNC_RATE,
    DMP_TTL_DAYS,
    EMAIL_VARIANT_RATE,
    EXTERNAL_ID_RATE,
    EXTRA_BROWSER_RATES,
    GROUP_RATE,
    HOUSEHOLD_RATE,
    IOS_RATE,
    JUNK,
    JUNK_ANONYMOUS_ID_RATE,
    JUNK_ANONYMOUS_IDS,
    KIOSK_MIN_USERS,
    KIOSK_USER_RATE,
    LOGIN_RATE,
    MEAN_SESSION_EVENTS,
    MIN_PEOPLE_FOR_FORCED,
    NEWSLETTER_RATE,
    PARTNER_RATE,
    PHONE_IN_IDENTIFY_RATE,
    PHONE_RATE,
    SECOND_APP_RATE,
    SHARED,
    TEST_EMAIL,
    TEST_EMAIL_MIN_USERS,
    TEST_EMAIL_RATE,
    TRACK_RATE,
    TWIN_RATE,
    WRONG_DMP_LINK_RATE,
    ZERO_IDFA_RATE,
    ZERO_MAID,
)
from .tables import CRM_COLUMNS, CRM_MAPPING, DMP_COLUMNS, DMP_MAPPING, SEGMENTS, TRUTH_COLUMNS

__all__ = [
    "ALIAS_RATE",
    "APP_USER_RATE",
    "CITIES",
    "CONTEXT_TRAITS_RATE",
    "COOKIE_LIFETIMES_DAYS",
    "COOKIE_LIFETIME_WEIGHTS",
    "CRM_COLUMNS",
    "CRM_MAPPING",
    "CUSTOMER_RATE",
    "DMP_COLUMNS",
    "DMP_MAPPING",
    "DMP_PERSON_RATE",
    "DMP_SYNC_RATE",
    "DMP_TTL_DAYS",
    "DOMAINS",
    "EMAIL_VARIANT_RATE",
    "EXTERNAL_ID_RATE",
    "EXTRA_BROWSER_RATES",
    "FIRST_NAMES",
    "GROUP_RATE",
    "GZIP_LEVEL",
    "HOUSEHOLD_RATE",
    "IOS_RATE",
    "JUNK",
    "JUNK_ANONYMOUS_IDS",
    "JUNK_ANONYMOUS_ID_RATE",
    "KIOSK_MIN_USERS",
    "KIOSK_USER_RATE",
    "LAST_NAMES",
    "LOGIN_RATE",
    "MEAN_SESSION_EVENTS",
    "MIN_PEOPLE_FOR_FORCED",
    "NEWSLETTER_RATE",
    "PAGES",
    "PARTNER_RATE",
    "PHONE_IN_IDENTIFY_RATE",
    "PHONE_RATE",
    "PRODUCT_EVENTS",
    "PROGRESS_EVERY",
    "SECOND_APP_RATE",
    "SEGMENTS",
    "SHARED",
    "TEST_EMAIL",
    "TEST_EMAIL_MIN_USERS",
    "TEST_EMAIL_RATE",
    "TRACK_RATE",
    "TRUTH_COLUMNS",
    "TWIN_RATE",
    "WRONG_DMP_LINK_RATE",
    "ZERO_IDFA_RATE",
    "ZERO_MAID",
    "SynthConfig",
    "SynthSummary",
    "generate",
]
