"""Record matching benchmark: Splink (DuckDB) over a synthetic CRM export, blocked as the
``[match]`` section says, side by side with the naive way: every pair compared.

A seeded CRM CSV: skewed name frequencies (so blocking gives realistic pair counts), zips under
towns of very different sizes, ``--households`` of people with a relative (same surname and
address, at times an email or a phone); 10% of people with a second record (another customer
id; typos, a nickname, a missing field, another email domain or phone format, a move). Timed as
``idgraph match`` runs, without Neo4j: ``read_records`` into a DuckDB file in a temporary
directory (``memory_limit`` = ``match_memory_mb``), ``train`` (EM), ``predict`` at 0.9; apart,
Splink's exact count of the blocked pairs; precision and recall at 0.99 (a sanity check). Peaks
per phase, sampled: resident set, DuckDB's memory, its spill, its directory's size. All pairs:
on ``--samples`` rows, the model of the first size scores every pair, then the blocked pairs;
at each size, all pairs are EXTRAPOLATED from the rate on the largest sample.

    .venv/bin/python benchmarks/match.py                               # 100k and 1M rows
    .venv/bin/python benchmarks/match.py --sizes 2000 --samples 1000   # a smoke run

Writes JSON to benchmarks/results/match.json.
"""

from __future__ import annotations

import argparse
import csv
import logging
import random
import re
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
from _report import RESULTS, commit_measured, header, peak_rss_mb, write
from rich.console import Console
from rich.table import Table
from splink import block_on
from splink.backends.duckdb import DuckDBAPI
from splink.blocking_analysis import count_comparisons_from_blocking_rules
from splink.internals.linker_components.inference import LinkerInference
from splink.internals.linker_components.training import LinkerTraining

from identity.config import Settings
from identity.matching.model import Pair, predict, train
from identity.matching.records import read_records
from identity.normalize import Normalizer
from loaders.match_spec import MatchSpec
from loaders.table import TableMapping, parse_mapping

console = Console()
THRESHOLD, SANITY = 0.9, 0.99
DUPLICATES = 0.10  # the share of people with a second record
COLUMNS = ["Customer ID", "First Name", "Last Name", "Birth Date", "Zip", "City", "Street"]
COLUMNS += ["E-mail", "Phone"]
COMPARE = dict(zip(COLUMNS[1:], ["name", "name", "dob", "postcode", "city", "street", "email",
                                  "phone"], strict=True))  # fmt: skip
# --blocking postcode: the default's rules, but the zip alone (a town's zip pairs all its people)
POSTCODE = [["Birth Date"], ["Zip"], ["E-mail"], ["Phone"], ["First Name", "Last Name"]]
MEMORY = "SELECT sum(memory_usage_bytes), sum(temporary_storage_bytes) FROM duckdb_memory()"
STEPS = {  # the Splink calls timed, to see where the time goes
    (LinkerTraining, "estimate_u_using_random_sampling"): "u (random pairs)",
    (LinkerTraining, "estimate_parameters_using_expectation_maximisation"): "EM",
    (LinkerInference, "predict"): "predict SQL",  # before its pairs are read
}
_FIRST = """James Mary John Patricia Robert Jennifer Michael Linda William Elizabeth David Barbara
Richard Susan Joseph Jessica Thomas Sarah Charles Karen Daniel Nancy Matthew Lisa Anthony Betty
Mark Margaret Donald Sandra Steven Ashley Paul Kimberly Andrew Emily Joshua Donna Kenneth Amy
Michelle Kevin Dorothy Brian Carol George Amanda Edward Melissa Ronald Deborah Timothy Laura"""
_NICKNAMES = """James:Jim Robert:Bob John:Johnny Michael:Mike William:Bill Elizabeth:Liz Edward:Ed
Richard:Dick Joseph:Joe Thomas:Tom Charles:Chuck Daniel:Dan Matthew:Matt Anthony:Tony Kenneth:Ken
Margaret:Peggy Steven:Steve Andrew:Andy Jennifer:Jenny Patricia:Pat Susan:Sue Jessica:Jess"""
# surnames and towns are made of these parts: about 8,000 surnames, 1,500 towns
_PARTS = """Mar Ber Dur Lam Fon Gar Mor Pet Rob Ler Dub Mic Fau Rou Gir Bon Mer Bla Gue Cha Hal
Whit Ash Brad Stan Kel Win Hart Col Pres Lind Nor Wel Har Ross Kirk Dal Fair Holt Brook
|- a e i o an el er ing wood
|tin nard and bert taine nier eau ier oy ois el ault ard son on et ley ford ton man
|ville burg mont field ford ton port haven dale wood bridge stead minster"""
_STREETS = "Oak Pine Maple Cedar Elm Lake Hill Park Main Church Mill River Station Market Green"
WAYS = {"Street": "St", "Avenue": "Ave", "Road": "Rd", "Lane": "Ln", "Drive": "Dr"}
_DOMAINS = "gmail.com yahoo.com hotmail.com outlook.com icloud.com orange.fr aol.com free.fr"
FIRST, DOMAINS, STREETS = _FIRST.split(), _DOMAINS.split(), _STREETS.split()
NICKNAMES = dict(pair.split(":", 1) for pair in _NICKNAMES.split())
PREFIX, MIDDLE, SUFFIX, TOWN = (part.split() for part in _PARTS.split("|"))


def _skew(n: int, offset: float) -> np.ndarray:
    w = 1.0 / (np.arange(n) + offset)  # Zipf-like: the first ranks much more frequent
    return np.asarray(w / w.sum())


def _typo(word: str, r: random.Random) -> str:  # names have 3 letters or more
    i = r.randrange(len(word) - 1)
    swapped = word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    return swapped if r.random() < 0.5 else word[:i] + word[i + 1 :]  # or a letter dropped


def _duplicate(row: list[str], r: random.Random) -> list[str]:
    """Another record of the same person (no customer id yet): one to three changes."""
    first, last, dob, zip_, city, street, email, phone = row
    changes = ["first", "last", "nickname", "missing", "domain", "street", "move", "dob"]
    changes = r.sample(changes, r.choice([1, 1, 2, 2, 3]))
    if "first" in changes or ("nickname" in changes and first not in NICKNAMES):
        first = _typo(first, r)
    elif "nickname" in changes:
        first = NICKNAMES[first]
    last = _typo(last, r) if "last" in changes else last
    if "domain" in changes:
        email = email.split("@")[0] + "@" + r.choice([d for d in DOMAINS if d not in email])
    street = " ".join(WAYS.get(w, w) for w in street.split()) if "street" in changes else street
    if "move" in changes:  # another address in the same town
        zip_ = f"{(int(zip_) + r.randrange(1, 90)) % 100_000:05d}"
        street = f"{r.randrange(1, 200)} {r.choice(STREETS)} Lane"
    if "dob" in changes:  # the day's digits swapped, or day and month
        dob = dob[:8] + dob[9] + dob[8] if dob[8] != dob[9] else dob[:5] + dob[8:] + dob[4:7]
    if r.random() < 0.5:  # another system's format
        digits = phone.replace(" ", "")
        phone = r.choice([f"+33{digits[1:]}", digits, phone.replace(" ", "."), f"+33 {phone[1:]}"])
    out = [first, last, dob, zip_, city, street, email, phone]
    if "missing" in changes:
        out[r.choice([2, 3, 5, 6, 7])] = ""
    return out


def generate(n: int, seed: int, path: Path, households: float) -> set[tuple[int, ...]]:
    """Write ``n`` CRM rows to ``path``; return the pairs of rows that are one person."""
    rng, r = np.random.default_rng(seed), random.Random(seed)
    lasts = sorted({a + b.strip("-") + c for a in PREFIX for b in MIDDLE for c in SUFFIX})
    towns = sorted({a + b.strip("-") + c for a in PREFIX for b in MIDDLE[:3] for c in TOWN})
    for names in (lasts, towns):
        r.shuffle(names)
    town_w = _skew(len(towns), 3)  # a few cities, many villages
    zips_per = np.maximum(1, np.round(town_w * 6000)).astype(int)  # about 6,000 zips
    codes = rng.choice(np.arange(1000, 99_999), int(zips_per.sum()), replace=False)
    first_zip = np.concatenate([[0], np.cumsum(zips_per)[:-1]])
    people = round(n / (1 + DUPLICATES))
    town = rng.choice(len(towns), people, p=town_w)
    zips = codes[first_zip[town] + (rng.random(people) * zips_per[town]).astype(int)]
    firsts = rng.choice(len(FIRST), people, p=_skew(len(FIRST), 5))
    surnames = rng.choice(len(lasts), people, p=_skew(len(lasts), 20))
    born = date(1940, 1, 1).toordinal() + rng.integers(0, 24_000, people)
    emails, rows = set[str](), list[list[str]]()
    for p in range(people):
        fn, ln = FIRST[firsts[p]], lasts[surnames[p]]
        local = r.choice([f"{fn}.{ln}", f"{fn[0]}{ln}", f"{fn}{ln}", f"{ln}.{fn}"]).lower()
        email = f"{local}@{r.choice(DOMAINS)}"
        while email in emails:
            email = f"{local}{r.randrange(1, 10_000)}@{r.choice(DOMAINS)}"
        emails.add(email)
        street = f"{r.randrange(1, 300)} {r.choice(STREETS)} {r.choice(list(WAYS))}"
        phone = "06 " + " ".join(f"{r.randrange(100):02d}" for _ in range(4))
        day = date.fromordinal(int(born[p])).isoformat()
        rows.append([fn, ln, day, f"{zips[p]:05d}", towns[town[p]], street, email, phone])
    # relatives (other people): a surname and an address shared, sometimes an email or phone
    for a, b in rng.choice(people, (round(people * households), 2)).tolist():
        rows[b][1], rows[b][3:6] = rows[a][1], rows[a][3:6]
        for column in (6, 7):  # a family email, a home phone
            rows[b][column] = rows[a][column] if r.random() < 0.15 else rows[b][column]
    copied = rng.choice(people, n - people, replace=False).tolist()
    rows += [_duplicate(rows[p], r) for p in copied]
    order = rng.permutation(n).tolist()
    lines = ([f"C{i + 1:0{max(6, len(str(n)))}d}", *rows[j]] for i, j in enumerate(order))
    with path.open("w", newline="") as out:
        csv.writer(out).writerows([COLUMNS, *lines])
    at = {j: i for i, j in enumerate(order)}  # row -> unique_id (its line)
    return {tuple(sorted((at[p], at[people + k]))) for k, p in enumerate(copied)}  # the truth


def mapping(blocking: str) -> tuple[TableMapping, MatchSpec]:
    match: dict[str, Any] = {"record": "Customer ID", "compare": COMPARE}
    match |= {"blocking": POSTCODE} if blocking == "postcode" else {}
    ids = {"Customer ID": "crm_id", "E-mail": "email", "Phone": "phone"}
    table = parse_mapping({"source": "crm", "identifiers": ids, "match": match}, (*ids.values(),))
    assert table.match is not None
    return table, table.match


def connect(directory: str) -> duckdb.DuckDBPyConnection:  # as service._connect, its defaults
    con = duckdb.connect(str(Path(directory) / "match.duckdb"))
    con.execute(f"SET memory_limit = '{int(Settings().match_memory_mb)}MB'")
    con.execute(f"SET temp_directory = '{directory}'")
    return con


class Probe(threading.Thread):
    """Per phase, its seconds and peaks sampled every 0.2 s: this process's resident set, DuckDB's
    memory, its temporary storage (spill), its directory's size (the database file holds Splink's
    tables); and the seconds of each Splink call of STEPS (patched meanwhile)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, directory: str) -> None:
        super().__init__(daemon=True)
        self.cursor, self.lock, self.phase = con.cursor(), threading.Lock(), "read"
        self.directory = Path(directory)
        self.stopping, self.saved = threading.Event(), {key: getattr(*key) for key in STEPS}
        self.seconds: dict[str, float] = {}
        self.peaks: dict[str, dict[str, float]] = {}
        self.calls: list[tuple[str, float]] = []

    def __enter__(self) -> Probe:
        for key in STEPS:
            setattr(*key, self._timed(key))
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        for key, method in self.saved.items():
            setattr(*key, method)
        self.stopping.set()
        self.join()
        self.cursor.close()

    def _timed(self, key: tuple[Any, str]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            name, started = STEPS[key], time.perf_counter()
            if name == "EM":  # which blocking rule
                sql = args[1].get_blocking_rule("duckdb").blocking_rule_sql
                name += " on " + "+".join(re.findall(r'l\."(\w+)"', sql))
            try:
                return self.saved[key](*args, **kwargs)
            finally:
                self.calls.append((name, round(time.perf_counter() - started, 3)))

        return run

    def run(self) -> None:
        while not self.stopping.wait(0.2):
            self.sample()

    def sample(self) -> None:
        rss = Path("/proc/self/status").read_text().split("VmRSS:")[1].split()[0]
        with self.lock:
            used, spilled = self.cursor.execute(MEMORY).fetchall()[0]
        peak = self.peaks.setdefault(self.phase, {})
        disk = 0
        for f in self.directory.iterdir():  # the database file (Splink's tables), spill files
            with suppress(FileNotFoundError):
                disk += f.stat().st_size
        now = {"rss_mb": int(rss) / 1024, "duckdb_mb": used / 2**20, "spilled_mb": spilled / 2**20,
               "disk_mb": disk / 2**20}  # fmt: skip
        for key, value in now.items():
            peak[key] = round(max(peak.get(key, 0.0), value), 1)

    @contextmanager
    def during(self, phase: str) -> Iterator[None]:
        self.phase, started = phase, time.perf_counter()
        yield
        self.seconds[phase] = round(time.perf_counter() - started, 3)
        self.sample()


def quality(pairs: list[Pair], true: set[tuple[int, ...]], at: float) -> dict[str, float]:
    """Pairwise precision and recall at ``at`` against the truth."""
    found = {(min(p.left, p.right), max(p.left, p.right)) for p in pairs if p.probability >= at}
    hit = len(found & true)
    return {"precision": hit / max(len(found), 1), "recall": hit / max(len(true), 1),
            "true_pairs": len(true), "found": len(found)}  # fmt: skip


def blocked_pairs(con: duckdb.DuckDBPyConnection, spec: MatchSpec) -> dict[str, int]:
    """The pairs each blocking rule adds to those before (Splink's exact count), and in all."""
    rules = [block_on(*rule) for rule in spec.blocking]
    records = DuckDBAPI(connection=con).register("records")
    counts = count_comparisons_from_blocking_rules(
        records, blocking_rules=rules, link_type="dedupe_only", record_sample_proportion=1.0
    )
    names = ["+".join(rule) for rule in spec.blocking]
    added = {n: int(c["marginal_comparison_count"]) for n, c in zip(names, counts, strict=True)}
    return {**added, "all": sum(added.values())}


def measure(n: int, args: argparse.Namespace, workdir: Path) -> tuple[dict[str, Any], Any]:
    (table, spec), path = mapping(args.blocking), workdir / f"crm-{n}.csv"
    true = generate(n, args.seed, path, args.households)
    with tempfile.TemporaryDirectory(dir=workdir) as directory:
        con, normalizer = connect(directory), Normalizer()
        with Probe(con, directory) as probe:
            with probe.during("read"):
                records = read_records(con, path, table, normalizer)
            assert records.count == n and not records.rejected, records.rejected[:3]
            with probe.during("train"):
                trained = train(con, spec, labels=False)
            with probe.during("predict"):
                pairs = list(predict(con, spec, trained.model, THRESHOLD))
            with probe.during("count blocked pairs"):
                by_rule = blocked_pairs(con, spec)
        con.close()
    seconds, by_phase, calls, compared = probe.seconds, probe.peaks, probe.calls, by_rule["all"]
    peaks = {k: max(p[k] for p in by_phase.values()) for k in by_phase["read"]}
    console.print(f"{n:,} rows: {seconds}; pairs by rule: {by_rule}; Splink calls: {calls}")
    return {
        "rows": n, "blocked_pairs_by_rule": by_rule, "seconds": seconds,
        "training": [trained.how, *trained.notes], "splink_seconds": calls,
        "read_rows_per_s": round(n / seconds["read"]), "pairs_compared": compared,
        "pairs_compared_per_s": round(compared / seconds["predict"]),
        "pairs_at_threshold": len(pairs), "at_sanity": quality(pairs, true, SANITY),
        "at_threshold": quality(pairs, true, THRESHOLD), "peaks_by_phase": by_phase,
        "peaks": {**peaks, "ru_maxrss_mb_so_far": round(peak_rss_mb(), 1)},
    }, trained.model  # fmt: skip


def versus(n: int, model: dict[str, Any], args: argparse.Namespace, workdir: Path) -> Any:
    """On ``n`` rows: every pair against the blocked pairs, the same model."""
    (table, spec), path = mapping(args.blocking), workdir / f"sample-{n}.csv"
    true = generate(n, args.seed + n, path, args.households)
    every = {**model, "blocking_rules_to_generate_predictions": []}  # Splink: 1=1, all pairs
    found: dict[str, Any] = {"rows": n}
    with tempfile.TemporaryDirectory(dir=workdir) as directory:
        con = connect(directory)
        read_records(con, path, table, Normalizer())
        for name, settings in (("blocked", model), ("all pairs", every)):
            compared = blocked_pairs(con, spec)["all"] if settings is model else n * (n - 1) // 2
            started = time.perf_counter()
            pairs = list(predict(con, spec, settings, THRESHOLD))
            took = time.perf_counter() - started
            found[name] = {"pairs_compared": compared, "seconds": round(took, 3),
                           "pairs_per_s": round(compared / took),
                           "at_sanity": quality(pairs, true, SANITY),
                           "at_threshold": quality(pairs, true, THRESHOLD)}  # fmt: skip
        con.close()
    found["time_ratio"] = round(found["all pairs"]["seconds"] / found["blocked"]["seconds"], 1)
    found["pairs_ratio"] = round(n * (n - 1) / 2 / max(found["blocked"]["pairs_compared"], 1), 1)
    return found


def _print(report: dict[str, Any]) -> None:
    runs = Table(title=f"record matching, predict at {THRESHOLD}; all pairs s: EXTRAPOLATED")
    for column in ("rows", "read rows/s", "train s", "predict s", "pairs compared", "pairs/s",
                   f">= {THRESHOLD}", f"prec@{SANITY}", f"recall@{SANITY}", "peak RSS MB",
                   "DuckDB MB", "spilled MB", "disk MB", "all pairs s", "all/blocked"):  # fmt: skip
        runs.add_column(column, justify="right")
    for run in report["runs"]:
        s, q, p, x = run["seconds"], run["at_sanity"], run["peaks"], run["all_pairs_extrapolated"]
        runs.add_row(
            f"{run['rows']:,}", f"{run['read_rows_per_s']:,}", f"{s['train']:.1f}",
            f"{s['predict']:.1f}", f"{run['pairs_compared']:,}",
            f"{run['pairs_compared_per_s']:,}", f"{run['pairs_at_threshold']:,}",
            f"{q['precision']:.3f}", f"{q['recall']:.3f}", f"{p['rss_mb']:,.0f}",
            f"{p['duckdb_mb']:,.0f}", f"{p['spilled_mb']:,.0f}", f"{p['disk_mb']:,.0f}",
            f"~{x['seconds']:,}", f"~{x['ratio']:,}x",
        )  # fmt: skip
    side = Table(title="the same model on a sample: every pair vs the blocked pairs (measured)")
    for column in ("rows", "method", "pairs compared", "seconds", "pairs/s", f"prec@{SANITY}",
                   f"recall@{SANITY}", f"recall@{THRESHOLD}", "all/blocked"):  # fmt: skip
        side.add_column(column, justify="right")
    for sample in report["samples"]:
        ratio = f"{sample['time_ratio']}x time, {sample['pairs_ratio']:,}x pairs"
        for name in ("blocked", "all pairs"):
            row, q = sample[name], sample[name]["at_sanity"]
            side.add_row(
                f"{sample['rows']:,}", name, f"{row['pairs_compared']:,}", f"{row['seconds']:.2f}",
                f"{row['pairs_per_s']:,}", f"{q['precision']:.3f}", f"{q['recall']:.3f}",
                f"{row['at_threshold']['recall']:.3f}", ratio if name == "all pairs" else "",
            )  # fmt: skip
    console.print(runs, side)
    console.print(f"peak RSS of the process (ru_maxrss): {report['peak_rss_mb']:,.0f} MB")


def main() -> int:
    logging.getLogger("splink").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000,1000000", help="CRM rows")
    parser.add_argument("--samples", default="2000,5000", help="rows compared pair by pair")
    parser.add_argument("--blocking", choices=("default", "postcode"), default="default")
    parser.add_argument("--households", type=float, default=0.08, help="share with a relative")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", "--out", dest="out", type=Path, default=RESULTS / "match.json")
    args = parser.parse_args()
    sizes, samples = (sorted(int(s) for s in v.split(",")) for v in (args.sizes, args.samples))
    if min(sizes) < 1000 or min(samples) < 100:
        parser.error("--sizes: at least 1000 rows; --samples: at least 100")
    revision = commit_measured()
    with tempfile.TemporaryDirectory(prefix="idgraph-bench-") as tmp:  # smallest size first
        first, model = measure(sizes[0], args, Path(tmp))
        found = [versus(n, model, args, Path(tmp)) for n in samples]
        runs = [first, *(measure(size, args, Path(tmp))[0] for size in sizes[1:])]
    rate = found[-1]["all pairs"]["pairs_per_s"]
    for run in runs:  # EXTRAPOLATED: n(n-1)/2 pairs at the rate on the largest sample
        pairs = run["rows"] * (run["rows"] - 1) // 2
        took, predicted = round(pairs / rate), run["seconds"]["predict"]
        run["all_pairs_extrapolated"] = {"pairs": pairs, "seconds": took, "from": samples[-1],
                                         "ratio": round(took / predicted)}  # fmt: skip
    report = {
        **header("match", revision), "parameters": {**vars(args), "out": str(args.out)},
        "memory_limit_mb": Settings().match_memory_mb, "threshold": THRESHOLD,
        "sanity_threshold": SANITY, "runs": runs, "samples": found,
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }  # fmt: skip
    _print(report)
    write(args.out, report, console)
    return 0


if __name__ == "__main__":
    sys.exit(main())
