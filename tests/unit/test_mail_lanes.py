"""The poster's lanes (appservice.mail.poster.lanes): mails of one thread keep their
acceptance order in one lane; other threads and rooms are lanes of their own."""

from __future__ import annotations

import datetime as dt

from appservice.mail.parse import parse_mail
from appservice.mail.poster import lanes, thread_keys
from dossier_api.domain.mail.spool import SpoolItem
from tests.harness.mail import build_mail

WHEN = dt.datetime(2026, 12, 2, tzinfo=dt.UTC)


def item(n: int, room: str = "!a:x", kind: str = "mail") -> SpoolItem:
    return SpoolItem(n, kind, room, "d", None, 0, 0, WHEN)


def keyed(**mails: tuple[int, str, bytes]) -> tuple[list[SpoolItem], dict[int, frozenset[str]]]:
    items, keys = [], {}
    for n, room, raw in mails.values():
        items.append(item(n, room))
        keys[n] = thread_keys(items[-1], {}, parse_mail(raw))
    return items, keys


def test_a_thread_is_one_lane_in_order_and_other_threads_are_apart() -> None:
    a, raw_a = build_mail("d@x", "A", "a")
    _, raw_b = build_mail("d@x", "B", "b")
    _, raw_a1 = build_mail("d@x", "Re: A", "a1", in_reply_to=a)
    a2, raw_a2 = build_mail("d@x", "Re: A", "a2", headers={"References": a})
    _, raw_a3 = build_mail("d@x", "Re: A", "a3", in_reply_to=a2)  # a3 → a2 → a
    _, raw_other_room = build_mail("e@x", "Re: A", "o", in_reply_to=a)
    items, keys = keyed(
        a=(1, "!a:x", raw_a),
        b=(2, "!a:x", raw_b),
        a1=(3, "!a:x", raw_a1),
        a3=(6, "!a:x", raw_a3),
        a2=(4, "!a:x", raw_a2),
        o=(5, "!b:x", raw_other_room),
    )
    found = sorted([[i.id for i in lane] for lane in lanes(items, keys)])
    assert found == [[1, 3, 4, 6], [2], [5]]


def test_a_reply_arriving_before_its_parent_joins_the_parent_lane() -> None:
    """Mail 1 answers mail 2 (accepted later): one lane, acceptance order kept."""
    parent, raw_parent = build_mail("d@x", "P", "p")
    _, raw_reply = build_mail("d@x", "Re: P", "r", in_reply_to=parent)
    items, keys = keyed(r=(1, "!a:x", raw_reply), p=(2, "!a:x", raw_parent))
    assert [[i.id for i in lane] for lane in lanes(items, keys)] == [[1, 2]]


def test_mails_without_message_id_and_reports_have_lanes_of_their_own() -> None:
    bounce = item(7, kind="bounce")
    keys = {
        7: thread_keys(bounce, {"report_root": "$root"}, None),
        8: thread_keys(item(8, kind="bounce"), {"report_event": "$root"}, None),
        9: thread_keys(item(9), {}, None),
        10: thread_keys(item(10), {}, None),
    }
    got = lanes([bounce, item(8, kind="bounce"), item(9), item(10)], keys)
    assert sorted([i.id for i in lane] for lane in got) == [[7, 8], [9], [10]]
