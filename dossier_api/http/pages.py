"""What every page of the dossier service shares: one Jinja2 environment (autoescape,
strict undefined), the strict Content-Security-Policy (no inline script or style, nothing
from another origin), French first with English available, dates as their readers expect
them, and readable errors (a 4xx page with a French message, never a traceback)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from dossier_api.domain.pathways import PATHWAYS
from dossier_api.domain.rooms import reference
from dossier_api.http.texts import TEXTS
from maillon.shared.circle import role_label
from maillon.shared.dates_fr import (
    born,
    format_birth_date,
    format_duration,
    format_moment,
    format_time,
    parse_iso,
)
from maillon.shared.text import displayable

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
LANG_COOKIE = "maillon_lang"
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": PAGE_CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}
# The widget's pages are shown in Element's iframe: framed, the rest as strict.
WIDGET_HEADERS = {
    **PAGE_HEADERS,
    "Content-Security-Policy": PAGE_CSP.replace("; frame-ancestors 'none'", ""),
}
del WIDGET_HEADERS["X-Frame-Options"]
STATIC_FILES = {
    "workspace.css": "text/css",
    "htmx-2.0.11.min.js": "application/javascript",
    "htmx-LICENSE.txt": "text/plain",
}

env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)
env.filters["reference"] = reference  # a dossier id as people see it (one reference)


def lang_of(request: web.Request) -> str:
    wanted = request.query.get("lang") or request.cookies.get(LANG_COOKIE)
    return "en" if wanted == "en" else "fr"


def _parse(value: object) -> dt.datetime | dt.date | None:
    if isinstance(value, dt.datetime | dt.date):
        return value
    return parse_iso(value) if isinstance(value, str) else None


class Formats:
    """Dates, roles and pathway names in the page's language."""

    def __init__(self, lang: str) -> None:
        self.lang = lang

    def when(self, value: object) -> str:
        """A moment or a day (with its weekday: an appointment, a due date)."""
        parsed = _parse(value)
        return str(value or "") if parsed is None else format_moment(parsed, self.lang)

    def birth(self, value: object) -> str:
        """A birth date: no weekday."""
        parsed = _parse(value)
        if parsed is None:
            return str(value or "")
        day = parsed.date() if isinstance(parsed, dt.datetime) else parsed
        return format_birth_date(day, self.lang)

    def born_word(self, sex: object) -> str:
        """« née », « né », « né(e) » only when the sex is not known."""
        return born(sex if isinstance(sex, str) else None, self.lang)

    def born_on(self, sex: object, birth_date: object) -> str:
        """« Née le 1er mars 1941 » (no weekday), "Born 1 March 1941"."""
        word = self.born_word(sex)
        day = self.birth(birth_date)
        return f"Born {day}" if self.lang == "en" else f"{word.capitalize()} le {day}"

    def duration(self, start: object, end: object) -> str:
        begin, finish = _parse(start), _parse(end)
        if not isinstance(begin, dt.datetime) or not isinstance(finish, dt.datetime):
            return ""
        return format_duration(begin, finish)

    def delay(self, seconds: int) -> str:
        """A delay in seconds as a duration: « 4 h », « 45 min », « 48 h »."""
        start = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
        return format_duration(start, start + dt.timedelta(seconds=seconds))

    def hour(self, value: object) -> str:
        parsed = _parse(value)
        return format_time(parsed) if isinstance(parsed, dt.datetime) else ""

    def role(self, code: str) -> str:
        return role_label(code, self.lang)

    def pathway_options(self) -> list[tuple[str, str]]:
        """The configured pathways, (id, name in the page's language)."""
        return [(pathway_id, self.pathway(pathway_id)) for pathway_id in PATHWAYS]

    def pathway(self, pathway_id: str, version: int | None = None) -> str:
        """The pathway's name (of that version: a dossier's own) in the page's language."""
        pathway = PATHWAYS.version(pathway_id, version)
        return pathway_id if pathway is None else pathway.label(self.lang)


def render(
    request: web.Request,
    template: str,
    status: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> web.Response:
    """A page; ``layout="widget"``: the narrow page of the widget (no site navigation),
    with the widget's headers."""
    lang = str(context.pop("lang", None) or lang_of(request))
    context.setdefault("layout", "page")
    body = env.get_template(template).render(
        lang=lang, t=TEXTS[lang], f=Formats(lang), path=request.path, **context
    )
    response = web.Response(
        text=displayable(body),
        status=status,
        content_type="text/html",
        charset="utf-8",
        headers=headers or PAGE_HEADERS,
    )
    if request.query.get("lang") in ("fr", "en"):
        response.set_cookie(
            LANG_COOKIE, lang, max_age=365 * 86400, httponly=True, samesite="Strict", path="/"
        )
    return response


def problem_page(
    request: web.Request,
    status: int,
    message: str,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> web.Response:
    """A refusal or an error, said in words (the status stays the HTTP status)."""
    context.setdefault("session", None)
    return render(
        request, "problem.html", status=status, headers=headers, message=message, **context
    )


async def static_file(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    kind = STATIC_FILES.get(name)
    if kind is None:
        raise web.HTTPNotFound()
    return web.Response(
        body=(STATIC / name).read_bytes(),
        content_type=kind,
        charset="utf-8",
        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "max-age=300"},
    )
