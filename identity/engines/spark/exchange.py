"""The Parquet files a Spark job reads and writes, and their conversion to and from the
in-memory columns of :mod:`identity.resolve.graph` and :mod:`identity.resolve.engine`.

A job's *input* directory holds::

    rules.json        the policy's rules per type, as_of, the policy's fingerprint
    identifiers/      id int64, key string, type int32, blocked bool, region bool, stored int8
    links/            id int64, a int64, b int64, count int64, first_seen int64,
                      last_seen int64, mergeable bool, cut bool, forced bool

(``type`` indexes ``rules.json``'s ``types``; ``blocked`` is the block now, by a steward or by
the policy; ``stored`` the stored shared verdict, used for identifiers outside the region;
``mergeable`` the party and sources test). Its *output* directory holds::

    groups/           key, group int64                  (every identifier of the region)
    shared/           key, kind int8, type, count, limit, examples  (shared identifiers)
    verdicts/         a_key, b_key, verdict int8, conflict_type, conflict_limit,
                      conflict_identifiers                (links that did not merge)
    quarantined/      members array<string>
    devices/          type, device, kept, other, split, refused_a, refused_b
    summary.json      counts, iterations of the components, seconds per stage

Files are written by pyarrow here (whence ``idgraph export links``) and by Spark on the
other side; either may live on any filesystem pyarrow and Spark both reach (a local
directory, ``hdfs://``, ``s3://`` with the credentials in the environment).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from identity.errors import IdgraphError
from identity.policy import Policy
from identity.resolve.devices import DeviceCall
from identity.resolve.engine import LIMIT, MERGED, Resolution
from identity.resolve.graph import DAY_MS, SHARED_KINDS, LinkGraph
from identity.resolve.local import LimitConflict, SharedNote

RULES = "rules.json"
SUMMARY = "summary.json"
_ROWS = 1_000_000  # rows per Parquet row group written here

IDENTIFIERS = pa.schema(
    [
        ("id", pa.int64()),
        ("key", pa.string()),
        ("type", pa.int32()),
        ("blocked", pa.bool_()),
        ("region", pa.bool_()),
        ("stored", pa.int8()),
    ]
)
LINKS = pa.schema(
    [
        ("id", pa.int64()),
        ("a", pa.int64()),
        ("b", pa.int64()),
        ("count", pa.int64()),
        ("first_seen", pa.int64()),
        ("last_seen", pa.int64()),
        ("mergeable", pa.bool_()),
        ("cut", pa.bool_()),
        ("forced", pa.bool_()),
    ]
)


class SparkMatchedLinks(IdgraphError):
    """The graph holds links from record matching, whose rules the Spark job does not run."""

    def __init__(self) -> None:
        super().__init__(
            "the graph holds links written by `idgraph match run`; the Spark engine does not "
            "resolve matched links yet (their duplicates count as one under the limits): "
            "resolve with the default engine"
        )


class ExchangeError(IdgraphError):
    """Files that are not what a job wrote, or results for another graph or policy."""


@dataclass(frozen=True)
class Rules:
    """What a job needs of the policy, per type (indexed as the identifiers' ``type``)."""

    types: list[str]
    limits: list[int | None]
    priority: list[int]
    ttl_ms: list[int | None]
    anchor: list[bool]
    device_types: list[int]  # anchor types a person may hold several of, when the rule is on
    two_hop: bool
    max_identity_size: int | None
    as_of_ms: int
    policy: str  # the policy's fingerprint: results are imported under the same policy only

    @classmethod
    def of(cls, policy: Policy, types: Sequence[str], as_of_ms: int) -> Rules:
        rules = [policy.rule(t) for t in types]
        anchor = [t in policy.anchor_types for t in types]
        return cls(
            types=list(types),
            limits=[r.limit for r in rules],
            priority=[r.priority for r in rules],
            ttl_ms=[r.ttl_days * DAY_MS if r.ttl_days is not None else None for r in rules],
            anchor=anchor,
            device_types=[
                t
                for t, rule in enumerate(rules)
                if policy.shared_devices and anchor[t] and (rule.limit is None or rule.limit > 1)
            ],
            two_hop=policy.two_hop,
            max_identity_size=policy.max_identity_size,
            as_of_ms=as_of_ms,
            policy=policy.fingerprint(),
        )

    def write(self, directory: str) -> None:
        _write_text(directory, RULES, json.dumps(asdict(self), indent=1))

    @classmethod
    def read(cls, directory: str) -> Rules:
        text = _read_text(directory, RULES)
        try:
            return cls(**json.loads(text))
        except (TypeError, ValueError) as e:
            raise ExchangeError(f"{directory}/{RULES} is not a rules file of idgraph: {e}") from e


# -- inputs ---------------------------------------------------------------------------------


class InputWriter:
    """Writes a job's input directory block by block (memory: one block)."""

    def __init__(self, directory: str) -> None:
        self.directory = directory.rstrip("/")
        fs, root = pafs.FileSystem.from_uri(_uri(self.directory))
        for part in ("identifiers", "links"):
            fs.create_dir(f"{root}/{part}", recursive=True)
        self._nodes = pq.ParquetWriter(
            f"{root}/identifiers/part-0.parquet", IDENTIFIERS, filesystem=fs
        )
        self._links = pq.ParquetWriter(f"{root}/links/part-0.parquet", LINKS, filesystem=fs)
        self.identifiers = self.links = 0

    def add_identifiers(self, columns: dict[str, Any]) -> None:
        table = pa.table(columns, schema=IDENTIFIERS)
        self._nodes.write_table(table, row_group_size=_ROWS)
        self.identifiers += table.num_rows

    def add_links(self, columns: dict[str, Any]) -> None:
        table = pa.table(columns, schema=LINKS)
        self._links.write_table(table, row_group_size=_ROWS)
        self.links += table.num_rows

    def close(self, rules: Rules) -> None:
        self._nodes.close()
        self._links.close()
        rules.write(self.directory)


def write_inputs(graph: LinkGraph, rules: Rules, directory: str) -> None:
    """Write ``graph`` (index = id) as a job's input; first_seen must be known (not -1)."""
    g = graph
    writer = InputWriter(directory)
    for start in range(0, max(g.n, 1), _ROWS):
        end = min(start + _ROWS, g.n)
        writer.add_identifiers(
            {
                "id": np.arange(start, end, dtype=np.int64),
                "key": g.keys[start:end],
                "type": g.types[start:end].astype(np.int32),
                "blocked": g.blocked[start:end],
                "region": g.region[start:end],
                "stored": g.stored_shared[start:end],
            }
        )
    if g.matched.any():
        raise SparkMatchedLinks()
    for start in range(0, max(len(g.a), 1), _ROWS):
        end = min(start + _ROWS, len(g.a))
        writer.add_links(
            {
                "id": np.arange(start, end, dtype=np.int64),
                "a": g.a[start:end].astype(np.int64),
                "b": g.b[start:end].astype(np.int64),
                "count": g.count[start:end],
                "first_seen": g.first_seen[start:end],
                "last_seen": g.last_seen[start:end],
                "mergeable": g.mergeable[start:end],
                "cut": g.cut[start:end],
                "forced": g.forced[start:end],
            }
        )
    writer.close(rules)


# -- outputs --------------------------------------------------------------------------------


def read_resolution(directory: str, graph: LinkGraph, rules: Rules) -> Resolution:
    """The resolution a job wrote to ``directory``, over ``graph`` (matched by keys).

    Refuses results that do not cover the graph's region exactly (the graph changed since it
    was exported) or that were computed under another policy than ``rules``."""
    written = Rules.read(directory)
    if written.policy != rules.policy:
        raise ExchangeError(
            f"the results in {directory} were computed under another policy "
            f"(fingerprint {written.policy}, now {rules.policy}): export and run the job again"
        )
    g = graph
    group_of = np.full(g.n, -1, dtype=np.int64)
    groups = _read(directory, "groups", ["key", "group"])
    nodes = _nodes(g, groups.column("key").to_pylist(), directory, "groups")
    group_of[nodes] = groups.column("group").to_numpy()
    missing = g.region & (group_of < 0)
    if missing.any() or (~g.region[nodes]).any():
        examples = [g.keys[i] for i in np.flatnonzero(missing)[:3].tolist()]
        raise ExchangeError(
            f"the results in {directory} do not cover the graph: {int(missing.sum())} "
            f"identifiers have no group (for instance {', '.join(examples)}); the graph "
            "changed since it was exported: export and run the job again"
        )
    used = group_of >= 0
    _, dense = np.unique(group_of[used], return_inverse=True)
    group_of[used] = dense

    shared_kind = np.zeros(g.n, dtype=np.int8)
    notes: dict[int, SharedNote] = {}
    shared = _read(directory, "shared", ["key", "kind", "type", "count", "limit", "examples"])
    nodes = _nodes(g, shared.column("key").to_pylist(), directory, "shared")
    shared_kind[nodes] = shared.column("kind").to_numpy()
    for node, row in zip(nodes.tolist(), shared.to_pylist(), strict=True):
        if row["type"] is not None:
            notes[node] = SharedNote(
                kind=SHARED_KINDS[row["kind"]],
                type=row["type"],
                count=row["count"],
                limit=row["limit"],
                examples=tuple(row["examples"]),
            )

    verdict = np.full(len(g.a), MERGED, dtype=np.int8)
    conflicts: dict[int, LimitConflict] = {}
    rows = _read(
        directory,
        "verdicts",
        ["a_key", "b_key", "verdict", "conflict_type", "conflict_limit", "conflict_identifiers"],
    )
    find = _link_finder(g)
    links = find(rows.column("a_key").to_pylist(), rows.column("b_key").to_pylist())
    verdict[links] = rows.column("verdict").to_numpy()
    limited = np.flatnonzero(rows.column("verdict").to_numpy() == LIMIT)
    if len(limited):
        picked = rows.take(pa.array(limited)).to_pylist()
        for j, row in zip(links[limited].tolist(), picked, strict=True):
            conflicts[j] = LimitConflict(
                type=row["conflict_type"],
                limit=row["conflict_limit"],
                identifiers=tuple(row["conflict_identifiers"]),
            )

    quarantined = [
        [g.index[key] for key in members]
        for members in _read(directory, "quarantined", ["members"]).column("members").to_pylist()
    ]
    quarantined.sort(key=lambda members: g.keys[members[0]])
    devices: list[DeviceCall] = []
    device_links: dict[int, DeviceCall] = {}
    calls = _read(
        directory, "devices", ["type", "device", "kept", "other", "split", "refused_a", "refused_b"]
    ).to_pylist()
    calls.sort(key=lambda row: (row["device"], row["other"]))
    for row in calls:
        call = DeviceCall(
            type=row["type"],
            device=tuple(row["device"]),
            kept=tuple(row["kept"]),
            other=tuple(row["other"]),
            split=row["split"],
        )
        devices.append(call)
        for j in find(row["refused_a"], row["refused_b"]).tolist():
            device_links[j] = call
    return Resolution(
        graph=g,
        group_of=group_of,
        n_groups=int(dense.max()) + 1 if len(dense) else 0,
        verdict=verdict,
        shared_kind=shared_kind,
        shared=notes,
        conflicts=conflicts,
        quarantined=quarantined,
        devices=devices,
        device_links=device_links,
    )


def read_summary(directory: str) -> dict[str, Any]:
    summary: dict[str, Any] = json.loads(_read_text(directory, SUMMARY))
    return summary


def write_summary(directory: str, summary: dict[str, Any]) -> None:
    _write_text(directory, SUMMARY, json.dumps(summary, indent=1))


def _read(directory: str, name: str, columns: list[str]) -> pa.Table:
    fs, root = pafs.FileSystem.from_uri(_uri(directory))
    path = f"{root.rstrip('/')}/{name}"
    if fs.get_file_info(path).type == pafs.FileType.NotFound:
        raise ExchangeError(f"{directory} holds no {name}/: not the output of an idgraph job")
    try:
        return pq.read_table(path, columns=columns, filesystem=fs)
    except (pa.ArrowInvalid, KeyError) as e:
        raise ExchangeError(f"{directory}/{name} is not what an idgraph job writes: {e}") from e


def _nodes(g: LinkGraph, keys: list[str], directory: str, name: str) -> npt.NDArray[np.int64]:
    index = g.index
    unknown = [key for key in keys if key not in index]
    if unknown:
        raise ExchangeError(
            f"{directory}/{name} names {len(unknown)} identifiers the graph does not hold "
            f"(for instance {', '.join(unknown[:3])}): the graph changed since it was "
            "exported, or these are another graph's results"
        )
    return np.fromiter((index[key] for key in keys), dtype=np.int64, count=len(keys))


def _link_finder(
    g: LinkGraph,
) -> Callable[[list[str], list[str]], npt.NDArray[np.int64]]:
    """Positions of the links between given pairs of keys (either direction), from one
    sorted index of the graph's links (built once per read, not per lookup)."""
    n = np.int64(max(g.n, 1))
    codes = _pair_codes(g.a.astype(np.int64), g.b.astype(np.int64), n)
    order = np.argsort(codes, kind="stable")
    ordered = codes[order]
    index = g.index

    def find(a_keys: list[str], b_keys: list[str]) -> npt.NDArray[np.int64]:
        if not a_keys:
            return np.zeros(0, dtype=np.int64)
        try:
            a = np.fromiter((index[k] for k in a_keys), dtype=np.int64, count=len(a_keys))
            b = np.fromiter((index[k] for k in b_keys), dtype=np.int64, count=len(b_keys))
        except KeyError as e:
            raise ExchangeError(
                f"a verdict names an identifier the graph does not hold: {e}"
            ) from e
        wanted = _pair_codes(a, b, n)
        at = np.minimum(np.searchsorted(ordered, wanted), len(order) - 1)
        found = order[at]
        if not (codes[found] == wanted).all():
            raise ExchangeError("a verdict names a link the graph does not hold: export again")
        return found.astype(np.int64)

    return find


def _pair_codes(
    a: npt.NDArray[np.int64], b: npt.NDArray[np.int64], n: np.int64
) -> npt.NDArray[np.int64]:
    codes: npt.NDArray[np.int64] = np.minimum(a, b) * n + np.maximum(a, b)
    return codes


def _uri(directory: str) -> str:
    return directory if "://" in directory else str(Path(directory).resolve())


def remove_directory(directory: str) -> None:
    """Delete a run's directory (inputs and outputs) wherever it lives."""
    fs, root = pafs.FileSystem.from_uri(_uri(directory))
    fs.delete_dir(root)


def _write_text(directory: str, name: str, text: str) -> None:
    fs, root = pafs.FileSystem.from_uri(_uri(directory))
    fs.create_dir(root, recursive=True)
    with fs.open_output_stream(f"{root.rstrip('/')}/{name}") as out:
        out.write(text.encode())


def _read_text(directory: str, name: str) -> str:
    fs, root = pafs.FileSystem.from_uri(_uri(directory))
    path = f"{root.rstrip('/')}/{name}"
    if fs.get_file_info(path).type == pafs.FileType.NotFound:
        raise ExchangeError(f"{directory} holds no {name}: not a directory written by idgraph")
    with fs.open_input_stream(path) as stream:
        return bytes(stream.read()).decode()
