"""The one clock of Maillon: aware UTC datetimes (stored as such by ``store.UTCDateTime``)."""

from __future__ import annotations

import datetime as dt


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
