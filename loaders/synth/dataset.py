"""``generate``: open the output files, then write people one at a time.

Each person's events are sorted by time and written at once, followed by their CRM row, DMP rows
and truth; only the current household and a ring of recent DMP partner ids outlive a person.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
from collections.abc import Callable
from contextlib import ExitStack
from operator import itemgetter
from pathlib import Path
from typing import TextIO

from identity.errors import ConfigError

from .cases import CASE_COLUMNS, partner, twin_email, twin_sessions
from .config import SynthConfig, SynthSummary
from .events import session
from .people import app_touch, household_tablet, new_person
from .rates import (
    KIOSK_USER_RATE,
    LOGIN_RATE,
    MEAN_SESSION_EVENTS,
    NEWSLETTER_RATE,
    PARTNER_RATE,
    TEST_EMAIL,
    TEST_EMAIL_RATE,
    TWIN_RATE,
)
from .state import _Run
from .tables import (
    CRM_COLUMNS,
    CRM_MAPPING,
    DMP_COLUMNS,
    DMP_MAPPING,
    TRUTH_COLUMNS,
    crm_row,
    dmp_rows,
)

GZIP_LEVEL = 5
PROGRESS_EVERY = 10_000


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
        "cases": out_dir / "cases.csv",
    }
    files["crm_mapping"].write_text(CRM_MAPPING, encoding="utf-8")
    files["dmp_mapping"].write_text(DMP_MAPPING, encoding="utf-8")
    with ExitStack() as stack:
        events = _open_events(stack, files["events"], compress=config.gzip)
        tables = []
        for name, header in (
            ("crm", CRM_COLUMNS),
            ("dmp", DMP_COLUMNS),
            ("truth", TRUTH_COLUMNS),
            ("cases", CASE_COLUMNS),
        ):
            handle = stack.enter_context(files[name].open("w", encoding="utf-8", newline=""))
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(header)
            tables.append(writer)
        run = _Run(config, events, *tables)
        reported = 0
        for i in range(config.people):
            _person(run, i)
            if progress is not None and run.counts["events"] - reported >= PROGRESS_EVERY:
                progress(run.counts["events"] - reported)
                reported = run.counts["events"]
        if progress is not None and run.counts["events"] > reported:
            progress(run.counts["events"] - reported)
    counts = run.counts
    return SynthSummary(config.people, counts["events"], counts["crm"], counts["dmp"], files)


def _person(run: _Run, i: int) -> None:
    """Generate person ``i`` and write their events, CRM row, DMP rows and truth."""
    rng = run.rng
    run.seen.clear()
    household = household_tablet(run, i)
    kiosk = i in run.forced_kiosk or rng.random() < KIOSK_USER_RATE
    test = i in run.forced_test or rng.random() < TEST_EMAIL_RATE
    case = None
    if household is None and not kiosk:
        if i == run.forced_partner or rng.random() < PARTNER_RATE:
            case = "partner"
        elif i == run.forced_twin or rng.random() < TWIN_RATE:
            case = "twin"
    customer = household is not None or i in run.forced_kiosk or case == "partner"
    p = new_person(run, i, customer=customer)
    if case is not None:
        if not p.apps:
            p.apps.append(app_touch(run))
        if case == "twin":
            twin_email(run, p)
    out: list[tuple[int, str]] = []
    mean = run.config.events_per_person
    budget = round(rng.expovariate(1.0 / mean)) if mean > 0 else 0
    touches = p.apps if run.config.apps_only else p.browsers + p.apps
    while budget > 0:
        size = min(budget, 1 + int(rng.expovariate(1.0 / (MEAN_SESSION_EVENTS - 1))))
        touch = run.pick(touches)
        login = p.crm_id is not None and rng.random() < LOGIN_RATE
        typed = p.email if p.crm_id is None and rng.random() < NEWSLETTER_RATE else None
        budget -= session(run, p, touch, out, size=size, login=login, typed=typed)
    if household is not None:
        session(run, p, household, out, size=2, login=True)
    if kiosk:
        session(run, p, run.kiosk, out, size=2, login=p.crm_id is not None, typed=p.email)
    if test:
        session(run, p, p.browsers[0], out, size=2, login=False, typed=TEST_EMAIL)
    if case == "partner":
        partner(run, p, out)
    elif case == "twin":
        twin_sessions(run, p, out)
    out.sort(key=itemgetter(0))
    run.events_file.write("".join([line for _, line in out]))
    run.counts["events"] += len(out)
    if p.crm_id is not None:
        crm_row(run, p)
    if p.dmp_id is not None:
        dmp_rows(run, p)
        if ("dmp_id", p.dmp_id) in run.seen:
            run.dmp_ring.append(p.dmp_id)


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
