"""Keeping profiles up to date: after a resolve, the profiles of the identities it touched
are read with their members, rebuilt by :mod:`identity.profiles.precedence` and written back
where they changed, page by page on writer threads (pages share no identity).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime
from typing import Any

from identity.policy import ProfileRules
from identity.profiles.precedence import (
    PROFILE_FIELDS,
    PROFILE_PREFIXES,
    Member,
    Summary,
    build_profile,
)
from identity.store import profiles as store
from identity.store.driver import Graph

PAGE = 1000  # identities per read and write


def _member(row: list[Any]) -> Member:
    key, type_, props, segments = row
    return Member(key, type_, None, None, dict(props), [(s, int(e)) for s, e in segments])


def _unstamped(props: dict[str, Any]) -> dict[str, Any]:
    """Profile properties (times in epoch ms, as read back) without ``profiled_at``."""
    return {k: v for k, v in props.items() if k != "profiled_at"}


def _row(identity: str, props: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """A write row: values, times as epoch ms (the driver packs datetimes slowly), and the
    profile properties to remove."""
    values = {k: v for k, v in props.items() if not isinstance(v, datetime)}
    times = [[k, round(v.timestamp() * 1000)] for k, v in props.items() if isinstance(v, datetime)]
    return {
        "id": identity,
        "props": values,
        "times": times,
        "stale": sorted(current.keys() - props.keys()),
    }


def new_profile(
    members: list[Member], summary: Summary, rules: ProfileRules, now: datetime
) -> dict[str, Any]:
    """The profile of a new identity as write values (``props``, ``times`` as epoch ms), from
    what the resolve read of its members: no read back once it exists."""
    row = _row("", build_profile(members, rules, now, summary), {})
    return {"props": row["props"], "times": row["times"]}


def stated_members(graph: Graph) -> dict[str, Member]:
    """Every identifier that says something (traits, events, DMP segments), by key."""
    return {row[0]: _member(row) for row in store.stated_members(graph)}


def mark_profiles_built(graph: Graph, rules: ProfileRules) -> None:
    """Record that every profile is built under ``rules``."""
    store.set_profile_state(graph, rules.fingerprint())


def refresh_profiles(
    graph: Graph,
    rules: ProfileRules,
    ids: Collection[str] | None,
    *,
    now: datetime | None = None,
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Rebuild the profiles of ``ids`` (None: every active identity, and the rules'
    fingerprint is recorded); an identity without members gets an empty profile. Only the
    profiles that changed are written (``profiled_at``: when it last changed). Pages of
    identities are read and written on ``workers`` threads (they share no identity). Returns
    how many were written; ``progress(identities done)`` after each page."""
    at = now or datetime.now(UTC)
    pages: Iterable[list[str]]
    if ids is None:
        pages = store.active_identity_pages(graph, PAGE)
    else:
        ordered = sorted(ids)
        pages = (ordered[i : i + PAGE] for i in range(0, len(ordered), PAGE))

    def rebuild(page: list[str]) -> tuple[int, int]:
        found = store.read_members(graph, page, PROFILE_FIELDS, PROFILE_PREFIXES)
        rows = []
        for id_ in page:
            if id_ not in found:
                continue
            (first, last, counts), members, current = found[id_]
            summary = Summary(first, last, dict(counts))
            props = build_profile([_member(r) for r in members], rules, at, summary)
            held = dict(current)
            row = _row(id_, props, held)
            built = {**row["props"], **dict(row["times"])}
            if _unstamped(built) != _unstamped(held):
                rows.append(row)
        if rows:
            store.write_profiles(graph, rows)
        return len(page), len(rows)

    done = written = 0
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="profiles") as pool:
        pending: set[Future[tuple[int, int]]] = set()
        for page in pages:
            if len(pending) >= max(1, workers) * 2:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    seen, changed = future.result()
                    done, written = done + seen, written + changed
                if progress is not None:
                    progress(done)
            pending.add(pool.submit(rebuild, page))
        for future in pending:
            seen, changed = future.result()
            done, written = done + seen, written + changed
    if progress is not None:
        progress(done)
    if ids is None:
        store.set_profile_state(graph, rules.fingerprint())
    return written


def profiles_outdated(graph: Graph, rules: ProfileRules) -> bool:
    """Whether the stored profiles were built under other rules (or never built)."""
    return store.profile_state(graph) != rules.fingerprint()
