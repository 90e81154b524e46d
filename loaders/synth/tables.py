"""The CRM and DMP tables: their columns, their loader mappings, and one person's rows.

The CRM holds every customer once (email and mobile as people write them), and some twice
(:mod:`.duplicates`: another customer id, typos); the DMP pairs some of a person's cookies with
their partner id, and now and then with another person's.
"""

from __future__ import annotations

from .duplicates import details, duplicate
from .people import email_text, phone_text
from .rates import DMP_SYNC_RATE, DMP_TTL_DAYS, WRONG_DMP_LINK_RATE
from .state import _Person, _Run

CRM_COLUMNS = (
    "Customer ID", "E-mail", "Mobile", "First Name", "Last Name", "City", "Country",
    "Marketing Opt-in", "Ads Opt-in", "Updated", "Birth Date", "Zip", "Street",
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

[match]
record = "Customer ID"
blocking = [["Last Name"], ["Birth Date"], ["E-mail"], ["Zip", "Street"]]

[match.compare]
"First Name" = "name"
"Last Name" = "name"
"Birth Date" = "dob"
"Zip" = "postcode"
"City" = "city"
"Street" = "street"
"E-mail" = "email"
"Mobile" = "phone"
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

SEGMENTS = (
    "travel_intender", "auto_intender", "sports_fan", "young_parents", "home_improvement",
    "luxury_shopper", "gamer", "foodie", "pet_owner", "tech_enthusiast",
)  # fmt: skip


def crm_row(run: _Run, p: _Person) -> None:
    assert p.crm_id is not None
    run.emit("crm_id", p.crm_id, p)
    email = p.email_at(run.window_ms)  # the CRM exports the current address
    run.emit("email", email, p)
    mobile = ""
    if p.phone is not None:
        mobile = phone_text(run, p.phone)
        run.emit("phone", p.phone, p)
    updated = run.ts(run.below(run.window_ms))
    marketing, ads = str(p.consent_marketing).lower(), str(p.consent_ads).lower()
    more = details(run.config.seed, p)
    run.crm.writerow(
        (
            p.crm_id,
            email_text(run, email),
            mobile,
            p.first,
            p.last,
            p.city,
            "FR",
            marketing,
            ads,
            updated,
            more.birth,
            more.zip,
            more.street,
        )
    )
    run.counts["crm"] += 1
    twin = duplicate(run.config.seed, p, email, run.width)
    if twin is not None:
        run.emit("crm_id", twin.crm_id, p)
        run.emit("email", twin.email, p)
        d = twin.details
        row = (twin.crm_id, twin.email, mobile if twin.mobile_same else "", twin.first, twin.last)
        run.crm.writerow((*row, p.city, "FR", marketing, ads, updated, d.birth, d.zip, d.street))
        run.counts["crm"] += 1


def dmp_rows(run: _Run, p: _Person) -> None:
    """A row for each of ``p``'s synced cookies, seen while the cookie lived."""
    assert p.dmp_id is not None
    rng = run.rng
    for browser in p.browsers:
        for epoch, cookie in browser.cookies.items():
            if rng.random() >= DMP_SYNC_RATE:
                continue
            set_at = epoch * browser.lifetime_ms - browser.phase_ms
            born = max(0, set_at)
            died = min(run.window_ms, set_at + browser.lifetime_ms)
            partner = p.dmp_id
            if run.dmp_ring and rng.random() < WRONG_DMP_LINK_RATE:
                partner = run.pick(run.dmp_ring)
            else:
                run.emit("dmp_id", partner, p)
            run.emit("cookie", cookie, p)  # in the DMP file even if no event carried it
            segments = "|".join(rng.sample(SEGMENTS, 1 + run.below(3)))
            seen_at = run.ts(born + run.below(died - born))
            run.dmp.writerow((cookie, partner, segments, run.pick(DMP_TTL_DAYS), seen_at))
            run.counts["dmp"] += 1
