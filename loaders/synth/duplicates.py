"""Customers entered twice in the CRM: a second record with another customer id and the typos
people make (the case record matching is for). The truth file knows both ids are one person.

Each person's birth date, postcode and street, and whether and how they are duplicated, come
from a random stream of their own (seeded by the run's seed and their id), so adding these
columns changed nothing else a run writes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from .state import _Person

DUPLICATE_RATE = 0.1  # of CRM customers
NICKNAMES = {
    "Jean": "J.", "Marie": "M.", "Pierre": "P.", "Anne": "A.", "Nicolas": "Nico",
    "Christophe": "Chris", "Catherine": "Cathy", "Frederic": "Fred", "Isabelle": "Isa",
}  # fmt: skip
STREETS = (
    "rue Victor Hugo", "avenue Jean Jaures", "rue de la Republique", "boulevard Voltaire",
    "rue Pasteur", "place de la Mairie", "rue des Lilas", "chemin du Moulin", "rue Gambetta",
    "allee des Tilleuls", "rue du Marechal Foch", "impasse des Roses",
)  # fmt: skip
ABBREVIATIONS = {"rue": "r.", "avenue": "av.", "boulevard": "bd", "place": "pl.", "chemin": "ch."}


@dataclass(frozen=True)
class Details:
    """What a CRM holds of a person besides their identifiers."""

    birth: str  # YYYY-MM-DD
    zip: str
    street: str


def _stream(seed: int, p: _Person) -> random.Random:
    return random.Random(f"{seed}:{p.pid}")


def details(seed: int, p: _Person) -> Details:
    rng = _stream(seed, p)
    birth = f"{rng.randint(1945, 2005)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    zip_ = f"{rng.randint(1, 95):02d}{rng.randint(0, 9)}{rng.randint(0, 9)}0"
    street = f"{rng.randint(1, 120)} {rng.choice(STREETS)}"
    return Details(birth, zip_, street)


def _typo(rng: random.Random, text: str) -> str:
    """One slip of the keyboard: two letters swapped, one dropped or one doubled."""
    if len(text) < 4:
        return text
    i = rng.randrange(1, len(text) - 2)
    kind = rng.randrange(3)
    if kind == 0:
        return text[:i] + text[i + 1] + text[i] + text[i + 2 :]
    if kind == 1:
        return text[:i] + text[i + 1 :]
    return text[: i + 1] + text[i:]


@dataclass(frozen=True)
class Duplicate:
    crm_id: str
    first: str
    last: str
    email: str
    mobile_same: bool
    details: Details


def duplicate(seed: int, p: _Person, email: str, width: int) -> Duplicate | None:
    """``p``'s second CRM record, or None (most customers are entered once)."""
    rng = random.Random(f"{seed}:{p.pid}:duplicate")
    if p.crm_id is None or p.second_email is not None or rng.random() >= DUPLICATE_RATE:
        return None  # nor a twin (a person changing email): each hard case stays one shape
    number = int(p.crm_id[1:]) + 10 ** (width + 1)
    first = p.first
    roll = rng.random()
    if roll < 0.3:
        first = _typo(rng, first)
    elif roll < 0.45:
        first = NICKNAMES.get(first, first)
    last = _typo(rng, p.last) if rng.random() < 0.3 else p.last
    local, _, domain = email.partition("@")
    roll = rng.random()
    if roll < 0.35:
        email = f"{_typo(rng, local)}@{domain}"
    elif roll < 0.55:
        email = f"{local}@{'gmail.com' if domain != 'gmail.com' else 'orange.fr'}"
    base = details(seed, p)
    street = base.street
    for word, short in ABBREVIATIONS.items():
        if rng.random() < 0.5:
            street = street.replace(word, short)
    birth = base.birth
    if rng.random() < 0.1:  # day and month swapped
        y, m, d = birth.split("-")
        birth = f"{y}-{d}-{m}" if int(d) <= 12 else birth
    return Duplicate(
        crm_id=f"C{number}",
        first=first,
        last=last,
        email=email,
        mobile_same=rng.random() < 0.5,
        details=Details(birth, base.zip, street),
    )
