"""People, their browsers and app installs, family-tablet households, and how they write ids.

Each function draws from the run's one random stream, in a fixed order, so a seed always gives
the same people.
"""

from __future__ import annotations

from bisect import bisect
from itertools import accumulate

from .phones import _phone_formats, _phone_number
from .rates import (
    APP_USER_RATE,
    COOKIE_LIFETIME_WEIGHTS,
    COOKIE_LIFETIMES_DAYS,
    CUSTOMER_RATE,
    DMP_PERSON_RATE,
    EMAIL_VARIANT_RATE,
    EXTRA_BROWSER_RATES,
    HOUSEHOLD_RATE,
    IOS_RATE,
    PHONE_RATE,
    SECOND_APP_RATE,
    SHARED,
    ZERO_IDFA_RATE,
    ZERO_MAID,
)
from .state import _DAY_MS, _Person, _Run, _Touch

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

_COOKIE_LIFETIME_CUMULATIVE = list(accumulate(COOKIE_LIFETIME_WEIGHTS))[:-1]


def household_tablet(run: _Run, i: int) -> _Touch | None:
    """The family tablet person ``i`` shares, starting a new household here at random."""
    if (
        run.household_left == 0
        and i + 1 < run.config.people
        and (i == run.forced_household or run.rng.random() < HOUSEHOLD_RATE)
    ):
        run.household = app_touch(run, tablet=True)
        run.household_left = min(run.pick((2, 3)), run.config.people - i)
        # Only the current household's identifiers are remembered: members are consecutive.
        run.fixed.difference_update(run.household_keys)
        keys = touch_keys(run.household)
        run.household_keys = [key for key in keys if key not in run.fixed]
        for kind, value in run.household_keys:
            run.fix(kind, value, SHARED)
    if run.household_left > 0:
        run.household_left -= 1
        return run.household
    return None


def new_person(run: _Run, i: int, *, customer: bool) -> _Person:
    rng = run.rng
    first, last = run.pick(FIRST_NAMES), run.pick(LAST_NAMES)
    customer = customer or rng.random() < CUSTOMER_RATE
    browsers = [web_touch(run)]
    browsers += [web_touch(run) for rate in EXTRA_BROWSER_RATES if rng.random() < rate]
    apps = []
    if run.config.apps_only or rng.random() < APP_USER_RATE:
        apps.append(app_touch(run))
        if rng.random() < SECOND_APP_RATE:
            apps.append(app_touch(run))
    return _Person(
        pid=f"p{i:0{run.width}d}",
        crm_id=f"C{i:0{run.width + 1}d}" if customer else None,
        first=first,
        last=last,
        email=f"{first.lower()}.{last.lower()}{i}@{run.pick(DOMAINS)}",
        phone=_phone_number(i, run.phone_offset) if rng.random() < PHONE_RATE else None,
        city=run.pick(CITIES),
        consent_marketing=rng.random() < 0.6,
        consent_ads=rng.random() < 0.4,
        dmp_id=f"{rng.getrandbits(64):016x}" if rng.random() < DMP_PERSON_RATE else None,
        browsers=browsers,
        apps=apps,
    )


def web_touch(run: _Run) -> _Touch:
    days = COOKIE_LIFETIMES_DAYS[bisect(_COOKIE_LIFETIME_CUMULATIVE, run.rng.random())]
    lifetime = days * _DAY_MS
    return _Touch(web=True, lifetime_ms=lifetime, phase_ms=run.below(lifetime))


def app_touch(run: _Run, *, tablet: bool = False) -> _Touch:
    rng = run.rng
    ios = rng.random() < IOS_RATE
    if ios and rng.random() < ZERO_IDFA_RATE:
        maid = ZERO_MAID
    else:
        maid = run.uuid().upper() if ios else run.uuid()
    device = {
        "id": run.uuid(),
        "advertisingId": maid,
        "adTrackingEnabled": maid != ZERO_MAID,
        "type": "ios" if ios else "android",
        "model": ("iPad" if ios else "Galaxy Tab") if tablet else ("iPhone" if ios else "Pixel"),
    }
    context = {"device": device}
    return _Touch(
        web=False,
        anonymous_id=run.uuid(),
        context=context,
        context_json=f',"context":{run.encode(context)}',
        maid=maid,
    )


def touch_keys(touch: _Touch) -> list[tuple[str, str]]:
    """The truth keys of a touch's fixed identifiers (an app's cookie, device id and maid)."""
    keys = [("cookie", touch.anonymous_id)]
    if touch.maid is not None:
        keys += [("device", touch.context["device"]["id"]), ("maid", touch.maid.lower())]
    return keys


def email_text(run: _Run, email: str) -> str:
    """``email`` as written: a case/whitespace variant at ``EMAIL_VARIANT_RATE``."""
    if run.rng.random() >= EMAIL_VARIANT_RATE:
        return email
    local, _, domain = email.partition("@")
    styled = ".".join(part.capitalize() for part in local.split("."))
    variants = (
        f" {styled}@{domain.capitalize()} ",
        email.upper(),
        f"{email} ",
        f"  {styled}@{domain}",
    )
    return run.pick(variants)


def phone_text(run: _Run, e164: str) -> str:
    """``e164`` as written, in one of the usual French formats."""
    return run.pick(_phone_formats(e164))
