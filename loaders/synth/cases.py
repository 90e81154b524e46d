"""Two people on one device, and its innocent twin (one person, two emails, one device).

- *Partner*: a customer's own app install (a phone, a tablet at home) where a second person,
  known only by an email, signs in to a newsletter now and then between the customer's own
  logins; half of these partners also typed their email in a browser of their own. The
  device stays the customer's in the truth; the partner is a person of their own
  (``<customer>-partner``).
- *Twin*: a person who changes their email address once, at a random time: before it they
  write one email everywhere (logins, forms), after it the other; each is written on the
  same device, one after the other.

``cases.csv`` (``person,case``) lists the people in these shapes (``partner_host``,
``partner``, ``twin``) so that ``idgraph evaluate`` can report them apart.
"""

from __future__ import annotations

from .events import session
from .people import DOMAINS, FIRST_NAMES, LAST_NAMES, web_touch
from .state import _Person, _Run

CASE_COLUMNS = ("person", "case")


def partner(run: _Run, p: _Person, out: list[tuple[int, str]]) -> None:
    """The customer ``p`` logs in on their device twice; a partner signs in there 2-4 times."""
    device = p.apps[0]
    for _ in range(2):
        session(run, p, device, out, size=2, login=True)
    first, last = run.pick(FIRST_NAMES), run.pick(LAST_NAMES)
    other = _Person(
        pid=f"{p.pid}-partner",
        crm_id=None,
        first=first,
        last=last,
        email=f"{first.lower()}.{last.lower()}.{p.pid}@{run.pick(DOMAINS)}",
        phone=None,
        city=p.city,
        consent_marketing=run.rng.random() < 0.6,
        consent_ads=run.rng.random() < 0.4,
        dmp_id=None,
        browsers=[web_touch(run)],
        apps=[],
    )
    for _ in range(run.pick((2, 3, 4))):
        session(run, other, device, out, size=2, login=False, typed=other.email)
    if run.rng.random() < 0.5:
        session(run, other, other.browsers[0], out, size=2, login=False, typed=other.email)
    run.cases.writerow((p.pid, "partner_host"))
    run.cases.writerow((other.pid, "partner"))


def twin_email(run: _Run, p: _Person) -> None:
    """From a random time in the middle of the window on, ``p`` writes a second email."""
    local, _, _ = p.email.partition("@")
    p.second_email = f"{local}.new@{run.pick(DOMAINS)}"
    p.email_change_ms = int((0.3 + 0.4 * run.rng.random()) * run.window_ms)


def twin_sessions(run: _Run, p: _Person, out: list[tuple[int, str]]) -> None:
    """One session on the device before the change and one after, each writing the email of
    its time (a login for a customer, a form otherwise)."""
    device = p.apps[0]
    change = p.email_change_ms / run.window_ms
    login = p.crm_id is not None
    session(run, p, device, out, size=2, login=login, typed=p.email, during=(0.0, change))
    session(run, p, device, out, size=2, login=login, typed=p.email, during=(change, 1.0))
    run.cases.writerow((p.pid, "twin"))
