"""A widget host page built on the real ``matrix-widget-api`` npm package (tests/js), served
on its own loopback origin, as Element hosts the widgets of a room: a ``ClientWidgetApi`` and
a ``WidgetDriver`` answering ``get_openid`` with a real token from the homeserver."""

from __future__ import annotations

import http.server
import json
import threading
from pathlib import Path
from typing import Any
from urllib.parse import quote

from playwright.async_api import Page

REPOSITORY = Path(__file__).resolve().parents[2]
JS = REPOSITORY / "tests" / "js"
FILES = {
    "/host.html": (JS / "widget-host" / "host.html", "text/html"),
    "/host.js": (JS / "widget-host" / "host.js", "application/javascript"),
    # The library's own browser build (browserify bundle, ``window.mxwidgets``).
    "/matrix-widget-api.js": (
        JS / "node_modules" / "matrix-widget-api" / "dist" / "api.js",
        "application/javascript",
    ),
}


class WidgetHost:
    def __init__(self) -> None:
        for path, _ in FILES.values():
            if not path.exists():
                raise RuntimeError(f"{path} absent : lancez scripts/ensure-browser.sh (npm ci)")

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                found = FILES.get(self.path.split("?", 1)[0])
                if found is None:
                    self.send_error(404)
                    return
                body = found[0].read_bytes()
                self.send_response(200)
                self.send_header("Content-Type", found[1] + "; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def page_url(
        self,
        widget: dict[str, Any],
        room_id: str,
        user_id: str,
        access_token: str,
        homeserver: str,
        openid: str = "allow",
    ) -> str:
        config = {
            "widget": widget,
            "roomId": room_id,
            "userId": user_id,
            "accessToken": access_token,
            "homeserver": homeserver,
            "openid": openid,
        }
        return f"{self.url}/host.html#{quote(json.dumps(config))}"

    async def open(self, page: Page, url: str) -> None:
        await page.goto(url)
