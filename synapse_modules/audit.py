"""Append-only record of every allow/deny decision on a patient room (who, what, when, why).

One JSON line per decision, one file per Synapse worker, never any message content, so the
dossier's audit can show who was let in or kept out of a patient room, and why.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

from maillon.shared.decision_log import FILE_PATTERN, AuditRecord, file_name


class AuditLog:
    def __init__(self, directory: str, worker: str) -> None:
        self._dir = Path(directory)
        self._dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._worker = worker
        self._path = self._dir / file_name(worker)
        self._lock = threading.Lock()

    def record(
        self, room_id: str, actor: str, action: str, target: str | None, allowed: bool, code: str
    ) -> AuditRecord:
        record = AuditRecord(
            ts=dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
            room_id=room_id,
            actor=actor,
            action=action,
            target=target,
            allowed=allowed,
            code=code,
            worker=self._worker,
        )
        line = json.dumps(asdict(record), ensure_ascii=False) + "\n"
        with self._lock:
            fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line.encode())
            finally:
                os.close(fd)
        return record


def read_audit(
    directory: str | os.PathLike[str], room_id: str | None = None
) -> Iterator[AuditRecord]:
    """Every recorded decision (all workers), oldest first within each worker's file."""
    for path in sorted(Path(directory).glob(FILE_PATTERN)):
        with path.open(encoding="utf-8") as handle:
            for line in handle:
                if not line.strip():
                    continue
                record = AuditRecord(**json.loads(line))
                if room_id is None or record.room_id == room_id:
                    yield record
