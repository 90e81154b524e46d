"""``neo4j-admin database import full``: a new database built offline from CSV files.

The importer writes the store files directly (no transactions, no Cypher), so it is an order
of magnitude faster than loads, at the cost of needing the server stopped and the database
being written whole. It ships in the community jars the local server runs from
(:data:`~identity.store.local_server.ADMIN_CLASS`) and reads the server's ``neo4j.conf``
(``NEO4J_HOME`` and ``NEO4J_CONF``), so :meth:`LocalServer.write_config` must have run.

The files it takes (written by :mod:`identity.backfill.csvfiles`): per group of nodes or
relationships one header file and gzipped parts, fields quoted as CSV quotes them (values
may hold commas, quotes and newlines: ``--multiline-fields``), arrays and labels separated by
:data:`ARRAY_DELIMITER` (a control character no value holds: the writer checks). No
``--skip-*`` option: a duplicate node or a dangling relationship fails the import loudly.

Safety: the database the import replaces is moved aside first (a rename, in its directory)
and put back when the import fails, so a failed backfill leaves the database it found.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from identity.errors import LocalServerError
from identity.store.host import JVM_OPTIONS, check_java, tail_of
from identity.store.local_server import ADMIN_CLASS, LocalServer

ARRAY_DELIMITER = "\x1f"  # U+001F, the unit separator: no identifier, source or label holds it
# exit codes of neo4j-admin (measured on 5.26): 0 done, 1 the database is in use, 70 failed
_IN_USE = 1
_USAGE = 64


@dataclass(frozen=True)
class ImportGroup:
    """One ``--nodes`` or ``--relationships`` group: a label or type, a header, parts."""

    name: str  # the label (nodes; "" when a :LABEL column says) or relationship type
    header: Path
    parts: tuple[Path, ...]

    def option(self, kind: str) -> str:
        files = ",".join(str(p) for p in (self.header, *self.parts))
        return f"--{kind}={self.name}={files}" if self.name else f"--{kind}={files}"


@dataclass(frozen=True)
class ImportResult:
    seconds: float
    report_file: Path
    output: str  # what neo4j-admin printed (its progress and summary)


def import_database(
    server: LocalServer,
    nodes: Sequence[ImportGroup],
    relationships: Sequence[ImportGroup],
    *,
    work_dir: Path,
    heap: str,
    database: str = "neo4j",
) -> ImportResult:
    """Run ``neo4j-admin database import full`` into ``database`` of the stopped ``server``.

    Raises :class:`LocalServerError` with neo4j-admin's own words when it fails; the
    database found before is then back in place.
    """
    if server.status().running:
        raise LocalServerError("the Neo4j server must be stopped before neo4j-admin imports")
    java = check_java()
    report = work_dir / "import-report.txt"
    command = [
        java, f"-Xmx{heap}", *JVM_OPTIONS, "-cp", f"{server.lib_dir}/*", ADMIN_CLASS,
        "database", "import", "full", database,
        *(group.option("nodes") for group in nodes),
        *(group.option("relationships") for group in relationships),
        "--array-delimiter=U+001F", "--multiline-fields=true", "--overwrite-destination=true",
        f"--report-file={report}",
    ]  # fmt: skip
    log = work_dir / "neo4j-admin.log"
    started = time.monotonic()
    with _set_aside(server, database) as restore, log.open("wb") as out:
        result = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=_env(server),
            cwd=work_dir,
            check=False,
        )
        if result.returncode != 0:
            restore()
            what = (
                "the database is in use: stop the server first"
                if result.returncode == _IN_USE
                else "the import failed"
            )
            raise LocalServerError(
                f"neo4j-admin database import: {what} (exit {result.returncode}); nothing "
                f"changed:\n{_failure(log, report, usage=result.returncode == _USAGE)}\n"
                f"(full output: {log})"
            )
    return ImportResult(
        time.monotonic() - started, report, log.read_text(encoding="utf-8", errors="replace")
    )


def _env(server: LocalServer) -> dict[str, str]:
    return {
        **os.environ,
        "NEO4J_HOME": str(server.config.home),
        "NEO4J_CONF": str(server.conf_dir),
    }


def _failure(log: Path, report: Path, *, usage: bool) -> str:
    if usage:  # the command line was refused: neo4j-admin says why first, then its help
        return "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[:3])
    text = tail_of(log, 25)
    lines = [
        line
        for line in text.splitlines()
        if not line.startswith(("\tat ", "[*", "[>")) and line.strip()
    ]
    problems = tail_of(report, 5)
    return "\n".join(lines[-12:]) + (f"\nreport: {problems}" if problems else "")


@contextlib.contextmanager
def _set_aside(server: LocalServer, database: str) -> Iterator[_Restore]:
    """Move ``database``'s store and transaction logs aside while the import runs; on a
    failure ``restore()`` puts them back, on success they are removed."""
    data = server.data_dir
    places = [data / "databases" / database, data / "transactions" / database]
    aside = [p.with_name(f".{p.name}.before-backfill") for p in places]
    for old in aside:
        shutil.rmtree(old, ignore_errors=True)
    moved = []
    for place, old in zip(places, aside, strict=True):
        if place.exists():
            place.rename(old)
            moved.append((place, old))
    restore = _Restore(moved)
    try:
        yield restore
    except BaseException:
        restore()
        raise
    if not restore.done:
        for _, old in moved:
            shutil.rmtree(old, ignore_errors=True)


class _Restore:
    def __init__(self, moved: list[tuple[Path, Path]]) -> None:
        self.moved = moved
        self.done = False

    def __call__(self) -> None:
        if self.done:
            return
        for place, old in self.moved:
            shutil.rmtree(place, ignore_errors=True)
            old.rename(place)
        self.done = True
