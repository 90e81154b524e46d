"""The rejects file of a batch: one JSON line per record or value refused, with its reason.

``{"batch", "record", "line", "field", "code", "message", "raw"}`` per line, in
``<rejects dir>/<batch id>.ndjson``; opened at the first rejection, so a clean load leaves no
file.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import IO, Any

from identity.model import Rejection


def _reference_line(record: str) -> int | None:
    head = record.split("#", 1)[0]
    return int(head) if head.isdigit() else None


class RejectsFile:
    """The rejects file of a batch, opened at the first rejection (thread-safe)."""

    def __init__(self, path: Path, batch_id: str, *, keep: bool = False) -> None:
        self.path = path
        self.batch_id = batch_id
        self.keep = keep
        self.records: list[Rejection] = []
        self.values: list[Rejection] = []
        self._handle: IO[str] | None = None
        self._lock = threading.Lock()

    def add(self, rejection: Rejection, *, whole_record: bool) -> None:
        with self._lock:
            if self.keep:
                (self.records if whole_record else self.values).append(rejection)
            self._add(rejection)

    def _add(self, rejection: Rejection) -> None:
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = self.path.open("w", encoding="utf-8")
        entry: dict[str, Any] = {
            "batch": self.batch_id,
            "record": rejection.record,
            "line": _reference_line(rejection.record),
            "field": rejection.field,
            "code": rejection.code,
            "message": rejection.message,
            "raw": rejection.raw,
        }
        self._handle.write(json.dumps(entry, ensure_ascii=False, default=str) + "\n")

    def close(self) -> Path | None:
        if self._handle is None:
            return None
        self._handle.close()
        return self.path
