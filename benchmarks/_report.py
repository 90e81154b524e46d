"""What every benchmark report records and how it is written: the benchmark's name, when, the
commit measured, the machine (with its load: other work skews the times) and the peak memory
of the process; the report goes to ``benchmarks/results/<name>.json``."""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

RESULTS = Path(__file__).resolve().parent / "results"


def commit_measured() -> str:
    """The commit measured, ``+dirty`` when the working tree differs from it."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--", "identity", "loaders"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def peak_rss_mb(*, children: bool = False) -> float:
    """The peak resident memory of this process so far, in MB; with ``children``, the larger
    of it and that of its largest finished child (a parser process, ``neo4j-admin``)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if children:
        peak = max(peak, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def process_peak_rss_mb(pid: int | None) -> float | None:
    """The peak resident memory of another running process (``VmHWM``, Linux), in MB; None
    when unknown."""
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def header(benchmark: str, revision: str) -> dict[str, Any]:
    """The fields every report starts with."""
    return {
        "benchmark": benchmark,
        "at": datetime.now(UTC).isoformat(),
        "revision": revision,
        "machine": {
            "cpus": os.cpu_count(),
            "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "load_average": os.getloadavg(),
        },
    }


def write(path: Path, report: dict[str, Any], console: Console) -> None:
    """Write ``report`` as JSON to ``path`` (folders made as needed) and say where."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=str))
    console.print(f"written: {path}")
