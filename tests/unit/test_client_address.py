"""The client's address as the self-enrolment limit reads it: behind Maillon's nginx (the
dossier API's processes of a worker deployment) the forwarded one, otherwise the peer's."""

from __future__ import annotations

from unittest import mock

from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from maillon.shared.web import client_address


def _request(peer: str, forwarded: str | None = None) -> web.Request:
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda name, default=None: (
        (peer, 41000) if name == "peername" else default
    )
    headers = {"X-Forwarded-For": forwarded} if forwarded is not None else {}
    return make_mocked_request("POST", "/inscription", headers=headers, transport=transport)


def test_behind_nginx_a_loopback_peer_carries_the_forwarded_address() -> None:
    assert client_address(_request("127.0.0.1", "203.0.113.7"), True) == "203.0.113.7"
    assert client_address(_request("::1", "203.0.113.7"), True) == "203.0.113.7"
    # nginx replaces the header; a list keeps the last (nginx's) address.
    assert client_address(_request("127.0.0.1", "10.0.0.1, 203.0.113.9"), True) == "203.0.113.9"
    assert client_address(_request("127.0.0.1"), True) == "127.0.0.1"


def test_the_header_is_the_clients_word_elsewhere() -> None:
    # One process on its own address: anyone may send the header.
    assert client_address(_request("198.51.100.4", "203.0.113.7"), False) == "198.51.100.4"
    assert client_address(_request("127.0.0.1", "203.0.113.7"), False) == "127.0.0.1"
    # Behind nginx, a peer that is not nginx (not loopback) is not believed either.
    assert client_address(_request("198.51.100.4", "203.0.113.7"), True) == "198.51.100.4"
