"""Counters of the appservice, exposed in Prometheus text format on /metrics."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class Metrics:
    transactions_received: int = 0
    transactions_replayed: int = 0
    transactions_rejected: int = 0
    events_stored: int = 0
    events_duplicate: int = 0
    events_processed: int = 0
    processing_errors: int = 0
    last_lag_seconds: float = 0.0
    backlog: int = 0
    room_sync_jobs: int = 0
    room_sync_errors: int = 0
    room_sync_backlog: int = 0
    started_at: float = field(default_factory=time.time)

    def render(self) -> str:
        lines = []
        for name, kind, value, help_text in (
            (
                "transactions_received_total",
                "counter",
                self.transactions_received,
                "Transactions pushed by the homeserver",
            ),
            (
                "transactions_replayed_total",
                "counter",
                self.transactions_replayed,
                "Transactions received again (no effect)",
            ),
            (
                "transactions_rejected_total",
                "counter",
                self.transactions_rejected,
                "Transactions refused (bad token or body)",
            ),
            ("events_stored_total", "counter", self.events_stored, "Events stored durably"),
            (
                "events_duplicate_total",
                "counter",
                self.events_duplicate,
                "Events already stored, ignored",
            ),
            ("events_processed_total", "counter", self.events_processed, "Events processed"),
            (
                "processing_errors_total",
                "counter",
                self.processing_errors,
                "Errors while processing events",
            ),
            (
                "processing_lag_seconds",
                "gauge",
                self.last_lag_seconds,
                "Delay from event origin to its processing, last event",
            ),
            ("backlog_events", "gauge", self.backlog, "Stored events not yet processed"),
            (
                "room_sync_jobs_total",
                "counter",
                self.room_sync_jobs,
                "Dossier changes carried into rooms",
            ),
            (
                "room_sync_errors_total",
                "counter",
                self.room_sync_errors,
                "Failed attempts to carry dossier changes into rooms (retried)",
            ),
            (
                "room_sync_backlog_jobs",
                "gauge",
                self.room_sync_backlog,
                "Dossier changes not yet carried into rooms",
            ),
        ):
            full = f"maillon_appservice_{name}"
            lines += [f"# HELP {full} {help_text}", f"# TYPE {full} {kind}", f"{full} {value}"]
        return "\n".join(lines) + "\n"
