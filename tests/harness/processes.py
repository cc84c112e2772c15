"""The processes of a test deployment, found through /proc (to kill one, or check none is
left)."""

from __future__ import annotations

import time
from pathlib import Path


def processes_under(directory: Path) -> list[int]:
    """Pids of live processes whose command line names the deployment directory."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            status = (entry / "status").read_text()
        except OSError:
            continue
        if str(directory) in cmdline and "State:\tZ" not in status:
            pids.append(int(entry.name))
    return pids


def component_pids(directory: Path, module: bytes) -> list[int]:
    """Pids of a deployment's component, by a piece of its command line (e.g.
    ``b"-m\\0appservice"``)."""
    pids = []
    for pid in processes_under(directory):
        try:
            if module in Path(f"/proc/{pid}/cmdline").read_bytes():
                pids.append(pid)
        except OSError:
            continue
    return pids


def wait_gone(directory: Path, timeout: float = 10) -> list[int]:
    deadline = time.monotonic() + timeout
    left = processes_under(directory)
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = processes_under(directory)
    return left
