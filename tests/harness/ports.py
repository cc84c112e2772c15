"""Free loopback ports for test deployments.

Ports are taken below the kernel's ephemeral range (where ``bind(("127.0.0.1", 0))`` and
every outgoing connection take theirs), so a port handed out here and bound a moment later
by a server cannot meanwhile be taken by a client connection. Each pytest-xdist worker has
its own slice; within it, the search starts at a random place so that test runs side by
side rarely try the same port."""

from __future__ import annotations

import os
import random
import socket

LOW, HIGH = 10_000, 32_000  # below Linux's default ephemeral range (32768–60999)
_handed_out: set[int] = set()


def _slice() -> range:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    index = int(worker) if worker.isdigit() else 0
    size = (HIGH - LOW) // max(count, 1)
    return range(LOW + index * size, LOW + (index + 1) * size)


_ports = _slice()
_next = random.randrange(len(_ports))


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    global _next
    for _ in range(len(_ports)):
        port = _ports[_next % len(_ports)]
        _next += 1
        if port not in _handed_out and _bindable(port):
            _handed_out.add(port)
            return port
    raise RuntimeError(f"no free port left in {_ports}")
