"""The format of the care-circle module's decision log: one JSON line per allow/deny
decision on a patient room, one file per Synapse worker (``DIR/audit/circle-decisions-
<worker>.jsonl``). Written by ``synapse_modules.audit``, loaded into the dossier audit by
``dossier_api.domain.room_decisions``; this module is the one owner of the format."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

FILE_PATTERN = "circle-decisions-*.jsonl"


def file_name(worker: str) -> str:
    return f"circle-decisions-{worker}.jsonl"


@dataclass(frozen=True)
class AuditRecord:
    ts: str
    room_id: str
    actor: str
    action: str
    target: str | None
    allowed: bool
    code: str
    worker: str


def parse_record(line: str) -> AuditRecord | None:
    """One line of the log; None if it is not a record (blank, truncated, foreign)."""
    try:
        value: Any = json.loads(line)
        return AuditRecord(**value) if isinstance(value, dict) else None
    except (ValueError, TypeError):
        return None
