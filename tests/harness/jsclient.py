"""Element's SDK (matrix-js-sdk with its Rust crypto) as a Matrix client in the tests: one
Node process per device (``tests/js/client.mjs``), JSON commands over stdin/stdout.

``tests/js/node_modules`` comes from ``npm ci`` (``make test`` runs it through
``scripts/ensure-browser.sh``)."""

from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path
from typing import Any

from maillon.shared.homeserver_client import Registered

JS_DIR = Path(__file__).resolve().parents[1] / "js"
NODE = "node"


class JsClient:
    def __init__(self, proc: asyncio.subprocess.Process, user_id: str, log: Path) -> None:
        self.proc = proc
        self.user_id = user_id
        self.log = log
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, homeserver_url: str, account: Registered, log: Path) -> JsClient:
        if not (JS_DIR / "node_modules" / "matrix-js-sdk").is_dir():
            raise RuntimeError("tests/js/node_modules absent : lancez `make test` (npm ci)")
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("w") as stderr:
            proc = await asyncio.create_subprocess_exec(
                NODE,
                str(JS_DIR / "client.mjs"),
                cwd=JS_DIR,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
            )
        client = cls(proc, account.user_id, log)
        await client.call(
            "start",
            timeout=120,
            baseUrl=homeserver_url,
            userId=account.user_id,
            accessToken=account.access_token,
            deviceId=account.device_id,
        )
        return client

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            answer = json.loads(line)
            future = self._pending.pop(answer["id"], None)
            if future is not None and not future.done():
                future.set_result(answer)
        for future in self._pending.values():
            if not future.done():
                future.set_exception(
                    AssertionError(f"matrix-js-sdk exited; its log:\n{self.log.read_text()}")
                )

    async def call(self, cmd: str, timeout: float = 60, **args: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        request_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        self.proc.stdin.write((json.dumps({"id": request_id, "cmd": cmd, **args}) + "\n").encode())
        await self.proc.stdin.drain()
        answer = await asyncio.wait_for(future, timeout)
        if "error" in answer:
            raise AssertionError(f"matrix-js-sdk {cmd} failed: {answer['error']}")
        return answer

    async def join(self, room_id: str) -> None:
        await self.call("join", roomId=room_id)

    async def send(self, room_id: str, body: str) -> str:
        return str((await self.call("send", roomId=room_id, body=body))["eventId"])

    async def wait_for_text(self, room_id: str, sender: str, body: str, timeout: float = 60) -> str:
        """The event id of the first decrypted message of ``sender`` containing ``body``."""
        answer = await self.call(
            "wait_text",
            timeout=timeout + 10,
            roomId=room_id,
            sender=sender,
            body=body,
            timeoutMs=int(timeout * 1000),
        )
        return str(answer["eventId"])

    async def close(self) -> None:
        if self.proc.returncode is None:
            assert self.proc.stdin is not None
            self.proc.stdin.write((json.dumps({"id": 0, "cmd": "stop"}) + "\n").encode())
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.terminate()  # it did not stop on its own: the test's own process
                await self.proc.wait()
        self._reader.cancel()
