"""The federation allow list: the other homeservers admitted into patient rooms.

One owner of the fact: a JSON file in the deployment directory
(``federation-peers.json``, named by the care-circle module's ``peers_file`` key). The
administration console writes it (atomically: a new file renamed over the old one); every
process reads it the same way, without a network hop: the Synapse module on every worker
(for each decision, from memory, the file looked at again at most every
``peers_refresh_seconds``), the dossier service and the bot (who may join a circle), and
the appservice (the rooms' ``m.room.server_acl``). A file that cannot be read or parsed
admits no other server (fail closed) and says so in the log, never its content.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from maillon.shared.circle import SERVER_NAME_RE
from maillon.shared.clock import utcnow

log = logging.getLogger(__name__)

PEERS_FILE = "federation-peers.json"
FORMAT_VERSION = 1
SETTLE_MARGIN_SECONDS = 1.0


@dataclass(frozen=True)
class Peer:
    server: str
    reason: str
    added_by: str | None = None
    added_at: str | None = None  # ISO 8601, UTC

    @classmethod
    def from_json(cls, raw: object) -> Peer:
        if not isinstance(raw, dict):
            raise ValueError("entrée de pair attendue (objet)")
        server, reason = raw.get("server"), raw.get("reason", "")
        if not isinstance(server, str) or not SERVER_NAME_RE.match(server):
            raise ValueError("nom de serveur invalide")
        if not isinstance(reason, str):
            raise ValueError("motif invalide")
        added_by, added_at = raw.get("added_by"), raw.get("added_at")
        return cls(
            server,
            reason,
            added_by if isinstance(added_by, str) else None,
            added_at if isinstance(added_at, str) else None,
        )


def read_peers(path: Path) -> tuple[Peer, ...]:
    """The peers in the file; an absent file: none. Raises ``ValueError`` (or ``OSError``)
    on a file that is not one."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ()
    data = json.loads(text)
    if not isinstance(data, dict) or data.get("version") != FORMAT_VERSION:
        raise ValueError(f"fichier des pairs : version {FORMAT_VERSION} attendue")
    peers = data.get("peers")
    if not isinstance(peers, list):
        raise ValueError("fichier des pairs : liste « peers » attendue")
    return tuple(Peer.from_json(p) for p in peers)


@contextlib.contextmanager
def changing_peers(path: Path) -> Iterator[None]:
    """One change of the list at a time, across threads and processes (the dossier API
    runs as several): read, change and replace the file under an exclusive lock."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a", encoding="utf-8") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def write_peers(path: Path, peers: Iterable[Peer]) -> None:
    """Replace the file in one step (written beside it, then renamed): a reader sees the
    old list or the new one, never half of one."""
    body = {"version": FORMAT_VERSION, "peers": [asdict(p) for p in peers]}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".peers-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(body, handle, ensure_ascii=False, indent=2, sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class PeerList:
    """The allow list as a process sees it: from the file (looked at again at most every
    ``refresh_seconds``; reloaded when its modification time or size changed), or the
    fixed ``static`` list of a deployment without a file."""

    def __init__(
        self,
        path: Path | None,
        static: tuple[str, ...] = (),
        refresh_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._path = path
        self._refresh = refresh_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._peers: tuple[Peer, ...] = tuple(Peer(s, "") for s in static)
        self._servers: tuple[str, ...] = tuple(static)
        self._checked: float | None = None
        self._signature: tuple[int, int] | None = None

    @property
    def path(self) -> Path | None:
        return self._path

    @property
    def refresh_seconds(self) -> float:
        return self._refresh

    def _signature_now(self) -> tuple[int, int] | None:
        assert self._path is not None
        try:
            st = self._path.stat()
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def _load(self, fresh: bool) -> None:
        if self._path is None:
            return
        now = self._clock()
        if not fresh and self._checked is not None and now - self._checked < self._refresh:
            return
        with self._lock:
            self._checked = now
            try:
                signature = self._signature_now()
                if signature == self._signature and self._signature is not None:
                    return
                peers = read_peers(self._path)
            except (OSError, ValueError) as exc:
                log.error(
                    "Maillon federation peers file unreadable (%s): no other server admitted",
                    type(exc).__name__,
                )
                self._peers, self._servers, self._signature = (), (), None
                return
            self._peers = peers
            self._servers = tuple(p.server for p in peers)
            self._signature = signature

    def servers(self, fresh: bool = False) -> tuple[str, ...]:
        """The peer servers; ``fresh``: look at the file now (after one's own write, or
        before writing rooms' ACLs)."""
        self._load(fresh)
        return self._servers

    def peers(self, fresh: bool = False) -> tuple[Peer, ...]:
        self._load(fresh)
        return self._peers

    def settled(self, now: dt.datetime | None = None) -> tuple[str, ...]:
        """The peers every process follows by now: a server added less than
        ``refresh_seconds`` (and a second) ago may still be refused by a worker's module,
        so the dossier side admits its people only after that (a removal counts at once)."""
        now = now or utcnow()
        margin = dt.timedelta(seconds=self._refresh + SETTLE_MARGIN_SECONDS)
        return tuple(p.server for p in self.peers() if _added_at(p) <= now - margin)


def _added_at(peer: Peer) -> dt.datetime:
    if peer.added_at is None:
        return dt.datetime.min.replace(tzinfo=dt.UTC)
    try:
        when = dt.datetime.fromisoformat(peer.added_at)
    except ValueError:
        return dt.datetime.max.replace(tzinfo=dt.UTC)  # unreadable: not admitted yet
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)
