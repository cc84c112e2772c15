"""The dossier widget shown in each patient room (Element's ``im.vector.modular.widgets``):
a static shell that obtains the user's Matrix OpenID token through the widget API, trades it
at ``POST /session/openid`` (the only place an OpenID token is accepted) for a short-lived
Maillon session, then opens the dossier page of its room (``/widget/dossiers/{id}``, served
by ``dossier_views``: the workspace's page and handlers, in a narrow layout, with that
user's rights, audited as the "widget" component)."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from dossier_api.http.pages import WIDGET_HEADERS, render

STATIC = Path(__file__).resolve().parent / "static"


async def shell(request: web.Request) -> web.Response:
    return render(request, "widget.html", headers=WIDGET_HEADERS, session=None, layout="widget")


async def static(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name != "widget.js":
        raise web.HTTPNotFound()
    return web.Response(
        body=(STATIC / name).read_bytes(),
        content_type="application/javascript",
        charset="utf-8",
        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "max-age=300"},
    )


def setup(app: web.Application) -> None:
    app.router.add_get("/widget", shell)
    app.router.add_get("/widget/{name}", static)
