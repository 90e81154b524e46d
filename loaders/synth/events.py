"""Segment events: one session at a time, each line of ``events.ndjson`` built from fragments.

A session is a few events on one touch (browser, app install, kiosk, family tablet): a login
(alias, identify with traits, ``Signed In``, group), or a typed email, then pages, screens and
product tracks. Every identifier a session shows is written to the truth file as it is used.
"""

from __future__ import annotations

from typing import Any

from .people import email_text, phone_text, touch_keys
from .rates import (
    ALIAS_RATE,
    CONTEXT_TRAITS_RATE,
    EXTERNAL_ID_RATE,
    GROUP_RATE,
    JUNK_ANONYMOUS_ID_RATE,
    JUNK_ANONYMOUS_IDS,
    PHONE_IN_IDENTIFY_RATE,
    TEST_EMAIL,
    TRACK_RATE,
)
from .state import _Person, _Run, _Touch

PAGES = ("Home", "Category", "Product", "Cart", "Checkout", "Account")
PRODUCT_EVENTS = ("Product Viewed", "Product Viewed", "Added to Cart", "Order Completed")
_PAGE_BODIES = tuple(f',"name":"{n}","properties":{{"path":"/{n.lower()}"}}' for n in PAGES)
_SCREEN_BODIES = tuple(f',"name":"{n}"' for n in PAGES)
_SIGNED_IN = ',"event":"Signed In","properties":{"method":"password"}'


def session(
    run: _Run,
    p: _Person,
    touch: _Touch,
    out: list[tuple[int, str]],
    *,
    size: int,
    login: bool,
    typed: str | None = None,
    during: tuple[float, float] = (0.0, 1.0),
) -> int:
    """Append one session's events to ``out`` as (time, JSON line); returns how many.

    Lines are assembled from fragments for speed: every value placed raw is generated here
    from ``[0-9A-Za-z_.:/ -]`` and needs no escaping; traits and context go through json.
    The session starts at a random time within ``during`` (fractions of the window).
    """
    rng = run.rng
    random_ = rng.random
    low, high = during
    t = int((low + random_() * (high - low)) * run.window_ms)
    email = p.email_at(t)
    if typed == p.email:
        typed = email
    if touch.web and touch.lifetime_ms:
        epoch = (t + touch.phase_ms) // touch.lifetime_ms
        anonymous_id = touch.cookies.get(epoch) or touch.cookies.setdefault(epoch, run.uuid())
    else:
        anonymous_id = touch.anonymous_id
    user = p.crm_id if login else None
    for kind, value in touch_keys(touch) if touch.maid else ():
        run.emit(kind, value, p)
    context, plain = touch.context, touch.context_json
    if touch.web and p.dmp_id is not None and random_() < EXTERNAL_ID_RATE:
        external = {"id": p.dmp_id, "type": "dmp_id", "collection": "users", "encoding": "none"}
        context = {**context, "externalIds": [external]}
        plain = f',"context":{run.encode(context)}'
        run.emit("dmp_id", p.dmp_id, p)
    with_traits = None
    user_part = ""
    bodies: list[tuple[str, str]] = []
    if user is not None:
        run.emit("crm_id", user, p)
        user_part = f',"userId":"{user}"'
        if random_() < ALIAS_RATE:
            bodies.append(("alias", f',"previousId":"{anonymous_id}"'))
        bodies.append(("identify", f',"traits":{run.encode(_traits(run, p, email))}'))
        bodies.append(("track", _SIGNED_IN))
        if random_() < GROUP_RATE:
            bodies.append(("group", f',"groupId":"acct_{int(random_() * 10_000):04d}"'))
    elif typed is not None:
        if typed != TEST_EMAIL:
            run.emit("email", typed, p)
        traits = run.encode({"email": email_text(run, typed)})
        bodies.append(("identify", f',"traits":{traits}'))
    while len(bodies) < size:
        if random_() < TRACK_RATE:
            bodies.append(("track", _track(run)))
        elif touch.web:
            bodies.append(("page", _PAGE_BODIES[int(random_() * len(_PAGE_BODIES))]))
        else:
            bodies.append(("screen", _SCREEN_BODIES[int(random_() * len(_SCREEN_BODIES))]))
    ids = f'"anonymousId":"{anonymous_id}"{user_part}'
    uuid, ts = run.uuid, run.ts
    used = False  # the cookie goes to the truth only if an event carries it
    for kind, body in bodies:
        head = ids
        if touch.web and random_() < JUNK_ANONYMOUS_ID_RATE:
            head = f'"anonymousId":"{JUNK_ANONYMOUS_IDS[random_() >= 0.8]}"{user_part}'
        else:
            used = True
        ctx = plain
        if user is not None and kind != "identify" and random_() < CONTEXT_TRAITS_RATE:
            if with_traits is None:
                shown = {**context, "traits": {"email": email}}
                with_traits = f',"context":{run.encode(shown)}'
            ctx = with_traits
        line = (
            f'{{"type":"{kind}","messageId":"{uuid()}","timestamp":"{ts(t)}",{head}{ctx}{body}}}\n'
        )
        out.append((t, line))
        t += 2_000 + int(random_() * 88_000)
    if used:
        run.emit("cookie", anonymous_id, p)
    return len(bodies)


def _traits(run: _Run, p: _Person, email: str) -> dict[str, Any]:
    traits: dict[str, Any] = {"email": email_text(run, email)}
    run.emit("email", email, p)
    if p.phone is not None and run.rng.random() < PHONE_IN_IDENTIFY_RATE:
        traits["phone"] = phone_text(run, p.phone)
        run.emit("phone", p.phone, p)
    traits.update(
        first_name=p.first,
        last_name=p.last,
        city=p.city,
        country="FR",
        consent_marketing=p.consent_marketing,
        consent_ads=p.consent_ads,
    )
    return traits


def _track(run: _Run) -> str:
    random_ = run.rng.random
    name = PRODUCT_EVENTS[int(random_() * len(PRODUCT_EVENTS))]
    if name != "Order Completed":
        return f',"event":"{name}","properties":{{"product_id":"SKU-{int(random_() * 5000):04d}"}}'
    cents = 1_000 + int(random_() * 29_000)
    order = f"O{run.rng.getrandbits(40):010x}"
    return (
        f',"event":"{name}","properties":{{"order_id":"{order}",'
        f'"revenue":{cents // 100}.{cents % 100:02d},"currency":"EUR"}}'
    )
