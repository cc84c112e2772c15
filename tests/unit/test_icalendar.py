"""iCalendar export format (RFC 5545)."""

from __future__ import annotations

from dossier_api.domain.care import to_icalendar


def test_icalendar_lines_are_folded_at_75_octets() -> None:
    long_title = "Réunion de concertation pluriprofessionnelle à domicile " * 3
    ics = to_icalendar(
        [
            {
                "id": "x1",
                "title": long_title,
                "start": "2026-12-01T09:00:00Z",
                "end": "2026-12-01T10:00:00Z",
                "place": None,
                "cancelled": False,
            }
        ],
        "Agenda",
        "sante.test",
    )
    lines = ics.split("\r\n")
    assert all(len(line.encode()) <= 75 for line in lines)
    unfolded = ics.replace("\r\n ", "")
    assert f"SUMMARY:{long_title}" in unfolded
