"""The administration console under ``/admin/``: pathways and their versions (form
builder, preview of the room, publish, restore, YAML import and export) and the migration
of dossiers to a version (dry run, then apply). Same login, session, CSRF, CSP and templates
as the workspace; every operation goes through ``Administration`` (checked and audited,
refusals included)."""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import logging
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from aiohttp.web_request import FileField
from multidict import MultiDictProxy

from dossier_api.domain.administration import (
    Administration,
    AuditFilters,
    room_preview,
)
from dossier_api.domain.core import ApiError
from dossier_api.domain.models import STAFF_ROLES, STRUCTURE_KINDS
from dossier_api.domain.pathways import FIELD_TYPES, PathwayError, parse_pathway
from dossier_api.domain.rooms import reference
from dossier_api.http.handlers import ADMIN, ROOM_SYNC
from dossier_api.http.pages import lang_of, problem_page, render
from dossier_api.http.sessions import Current, csrf_ok, current, redirect
from dossier_api.http.texts_admin import ADMIN_TEXTS
from maillon.shared.circle import ROLES
from maillon.shared.text import digits

log = logging.getLogger(__name__)
CSRF_REFUSED = "Jeton anti-falsification (CSRF) manquant ou incorrect."
Page = Callable[[web.Request, Current], Awaitable[web.StreamResponse]]


def _page(
    action: str, write: bool = False, managers: bool = False, keepers: bool = False
) -> Callable[[Page], Any]:
    """A console page: a session (else the login page), the CSRF token on writes, and a
    refusal said in a page (403 audited as ``action``) for whoever is not an administrator
    (nor, on ``managers`` pages, a structure's manager; on ``keepers`` pages, a resource
    team's coordinator)."""

    def wrap(handler: Page) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def page(request: web.Request) -> web.StreamResponse:
            session = await current(request)
            if session is None:
                if write:
                    return problem_page(request, 401, "Session expirée : reconnectez-vous.")
                return redirect("/login?next=" + request.path)
            if write and not await csrf_ok(request, session):
                return problem_page(request, 403, CSRF_REFUSED, session=session)
            svc = request.app[ADMIN]
            try:
                caller = session.caller
                allowed = (
                    caller.is_admin
                    or (managers and await asyncio.to_thread(svc.may_administer, caller))
                    or (keepers and await asyncio.to_thread(svc.keeps_teams, caller))
                )
                if not allowed:
                    await asyncio.to_thread(svc.refuse, caller, action)
                return await handler(request, session)
            except ApiError as exc:
                return problem_page(request, exc.status, exc.message, session=session)

        return page

    return wrap


def _show(request: web.Request, template: str, session: Current, **context: Any) -> web.Response:
    status = int(context.pop("status", 200))
    return render(
        request,
        template,
        status=status,
        session=session,
        a=ADMIN_TEXTS[lang_of(request)],
        **context,
    )


def _download(text: str, content_type: str, filename: str) -> web.Response:
    return web.Response(
        text=text,
        content_type=content_type,
        charset="utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
        },
    )


def _version(request: web.Request) -> int:
    raw = request.match_info.get("version") or request.query.get("version", "")
    if not digits(raw) or not 0 < int(raw) < 100000:
        raise ApiError(400, "M_INVALID_PARAM", "numéro de version attendu")
    return int(raw)


# -- pages ---------------------------------------------------------------------------------


@_page("admin.home", managers=True)
async def home(request: web.Request, session: Current) -> web.StreamResponse:
    return _show(request, "admin_home.html", session)


async def _pathways(
    request: web.Request, session: Current, errors: list[str], status: int = 200
) -> web.Response:
    listed = await asyncio.to_thread(request.app[ADMIN].pathways, session.caller)
    return _show(
        request,
        "admin_pathways.html",
        session,
        pathways=listed,
        errors=errors,
        request_created=None if errors else request.query.get("cree"),
        status=status,
    )


@_page("admin.pathways.read")
async def pathways_page(request: web.Request, session: Current) -> web.StreamResponse:
    return await _pathways(request, session, [])


@_page("admin.pathway.export")
async def export(request: web.Request, session: Current) -> web.StreamResponse:
    pid = request.match_info["pathway_id"]
    text = await asyncio.to_thread(
        request.app[ADMIN].export_yaml, session.caller, pid, _version(request)
    )
    return _download(text, "application/yaml", f"{pid}-v{_version(request)}.yaml")


@_page("admin.pathway.import", write=True)
async def import_yaml(request: web.Request, session: Current) -> web.StreamResponse:
    form = await request.post()
    upload = form.get("file")
    text = str(form.get("yaml") or "")
    if upload is not None and hasattr(upload, "file"):
        text = upload.file.read().decode("utf-8", "replace") or text
    try:
        row = await asyncio.to_thread(request.app[ADMIN].import_yaml, session.caller, text)
    except ApiError as exc:
        return await _pathways(request, session, [exc.message], exc.status)
    return redirect(f"/admin/parcours?cree={row['pathway_id']}-{row['version']}")


@_page("admin.pathway.publish", write=True)
async def publish(request: web.Request, session: Current) -> web.StreamResponse:
    pid = request.match_info["pathway_id"]
    await asyncio.to_thread(request.app[ADMIN].publish, session.caller, pid, _version(request))
    return redirect("/admin/parcours")


@_page("admin.pathway.restore", write=True)
async def restore(request: web.Request, session: Current) -> web.StreamResponse:
    pid = request.match_info["pathway_id"]
    await asyncio.to_thread(request.app[ADMIN].restore, session.caller, pid, _version(request))
    return redirect("/admin/parcours")


# -- the form builder --------------------------------------------------------------------


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def definition_from_form(base: dict[str, Any], form: MultiDictProxy[Any]) -> dict[str, Any]:
    """The definition the builder's form describes, on top of ``base`` (its sections the
    builder does not edit are kept as they are)."""

    def value(name: str) -> str:
        got = form.get(name)
        return got.strip() if isinstance(got, str) else ""

    def count(name: str) -> int:
        raw = value(name)
        return min(int(raw), 200) if digits(raw) else 0

    definition = copy.deepcopy(base)
    definition["name"] = value("name")
    template = dict(definition.get("room_template") or {})
    for key in ("name", "topic", "welcome"):
        template[key] = value(f"room_{key}")
    for key in ("allow_patient", "allow_knock"):
        template[key] = form.get(key) == "on"
    definition["room_template"] = template
    definition["roles_allowed"] = [r for r in form.getall("roles", []) if isinstance(r, str)]
    definition["tasks_checklist"] = _lines(value("tasks"))
    old_forms = {f.get("id"): f for f in base.get("forms") or [] if isinstance(f, dict)}
    forms = []
    for i in range(count("form_count")):
        p = f"form{i}_"
        form_id = value(p + "id")
        if not form_id or form.get(p + "remove") == "on":
            continue
        fields = []
        for j in range(count(p + "field_count")):
            q = f"{p}field{j}_"
            field_id = value(q + "id")
            if not field_id or form.get(q + "remove") == "on":
                continue
            field: dict[str, Any] = {
                "id": field_id,
                "label": value(q + "label") or field_id,
                "type": value(q + "type"),
            }
            if form.get(q + "required") == "on":
                field["required"] = True
            choices = [c.strip() for c in value(q + "choices").split(";") if c.strip()]
            if choices:
                field["choices"] = choices
            if value(q + "help"):
                field["help"] = value(q + "help")
            fields.append(field)
        old = old_forms.get(form_id)
        entry = {**(old or {}), "id": form_id, "title": value(p + "title") or form_id}
        entry["fields"] = fields
        previous = int((old or {}).get("version", 0))
        same = (
            old is not None and old.get("fields") == fields and old.get("title") == entry["title"]
        )
        entry["version"] = previous if same else previous + 1
        forms.append(entry)
    definition["forms"] = forms
    return definition


def _builder(
    request: web.Request,
    session: Current,
    definition: dict[str, Any],
    base_version: int,
    errors: list[str],
    status: int = 200,
) -> web.Response:
    preview = None
    if not errors:
        try:
            preview = room_preview(parse_pathway(definition, "aperçu"))
        except (PathwayError, KeyError, IndexError, ValueError) as exc:
            errors = [str(exc)]
    return _show(
        request,
        "admin_builder.html",
        session,
        d=definition,
        base_version=base_version,
        errors=errors,
        preview=preview,
        roles=ROLES,
        field_types=FIELD_TYPES,
        status=status if not errors or status != 200 else 400,
    )


@_page("admin.pathway.builder")
async def builder(request: web.Request, session: Current) -> web.StreamResponse:
    pid = request.match_info["pathway_id"]
    raw = request.query.get("depuis")
    version = int(raw) if raw and digits(raw) else None
    found = await asyncio.to_thread(request.app[ADMIN].definition, session.caller, pid, version)
    return _builder(request, session, found["definition"], found["version"], [])


@_page("admin.pathway.create", write=True)
async def save(request: web.Request, session: Current) -> web.StreamResponse:
    pid = request.match_info["pathway_id"]
    form = await request.post()
    raw = str(form.get("base_version") or "")
    svc = request.app[ADMIN]
    base = await asyncio.to_thread(
        svc.definition, session.caller, pid, int(raw) if digits(raw) else None
    )
    definition = definition_from_form(base["definition"], form)
    action = form.get("action")
    if action == "preview":
        errors: list[str] = []
        try:
            parse_pathway(definition, pid)
        except PathwayError as exc:
            errors = [str(exc)]
        return _builder(request, session, definition, base["version"], errors)
    try:
        row = await asyncio.to_thread(
            svc.create_version, session.caller, definition, action == "publish"
        )
    except ApiError as exc:
        return _builder(request, session, definition, base["version"], [exc.message], exc.status)
    return redirect(f"/admin/parcours?cree={row['pathway_id']}-{row['version']}")


# -- migration ---------------------------------------------------------------------------


@_page("admin.migration.dry_run")
async def migration_page(request: web.Request, session: Current) -> web.StreamResponse:
    pid = request.match_info["pathway_id"]
    plan = await asyncio.to_thread(
        request.app[ADMIN].migration_plan, session.caller, pid, _version(request)
    )
    return _show(request, "admin_migration.html", session, plan=plan, done=None)


@_page("admin.migration.apply", write=True)
async def migrate(request: web.Request, session: Current) -> web.StreamResponse:
    pid = request.match_info["pathway_id"]
    version = _version(request)
    moved = await asyncio.to_thread(request.app[ADMIN].migrate, session.caller, pid, version)
    for dossier_id in moved:  # the rooms follow now (the outbox keeps what fails)
        await request.app[ROOM_SYNC].sync(dossier_id)
    plan = {"pathway_id": pid, "version": version, "dossiers": []}
    return _show(request, "admin_migration.html", session, plan=plan, done=len(moved))


# -- audit browser -----------------------------------------------------------------------

AUDIT_PER_PAGE = 100
AUDIT_KEYS = ("dossier", "personne", "structure", "composant", "du", "au")


def _day(request: web.Request, key: str) -> dt.date | None:
    raw = request.query.get(key, "").strip()
    if not raw:
        return None
    try:
        return dt.date.fromisoformat(raw)
    except ValueError as exc:
        raise ApiError(
            400, "M_INVALID_PARAM", f"« {key} » : une date AAAA-MM-JJ est attendue"
        ) from exc


def audit_filters(request: web.Request) -> AuditFilters:
    q = request.query

    def text(key: str, longest: int) -> str | None:
        value = q.get(key, "").strip()
        if len(value) > longest:
            raise ApiError(400, "M_INVALID_PARAM", f"« {key} » : {longest} caractères au plus")
        return value or None

    return AuditFilters(
        dossier_id=text("dossier", 32),
        person=text("personne", 255),
        structure_id=text("structure", 32),
        component=text("composant", 30),
        since=_day(request, "du"),
        until=_day(request, "au"),
    )


@_page("admin.audit.read", managers=True)
async def audit_page(request: web.Request, session: Current) -> web.StreamResponse:
    wanted = audit_filters(request)
    raw = request.query.get("page", "1")
    page = int(raw) if digits(raw) and 0 < int(raw) < 100000 else 1
    found = await asyncio.to_thread(
        request.app[ADMIN].audit,
        session.caller,
        wanted,
        AUDIT_PER_PAGE,
        (page - 1) * AUDIT_PER_PAGE,
    )
    kept = {k: v for k, v in request.query.items() if k in AUDIT_KEYS and v}
    return _show(
        request,
        "admin_audit.html",
        session,
        found=found,
        query=kept,
        page=page,
        pages=max(1, -(-found["total"] // AUDIT_PER_PAGE)),
        link=lambda extra: "?" + urlencode({**kept, **extra}),
        csv_link="/admin/journal.csv?" + urlencode(kept),
        ref=reference,
    )


@_page("admin.audit.export", managers=True)
async def audit_csv(request: web.Request, session: Current) -> web.StreamResponse:
    text = await asyncio.to_thread(
        request.app[ADMIN].audit_csv, session.caller, audit_filters(request)
    )
    return _download(text, "text/csv", "journal.csv")


# -- structures --------------------------------------------------------------------------


async def _structures(
    request: web.Request, session: Current, errors: list[str], status: int = 200
) -> web.Response:
    listed = await asyncio.to_thread(request.app[ADMIN].structures, session.caller)
    return _show(
        request,
        "admin_structures.html",
        session,
        structures=listed,
        errors=errors,
        kinds=STRUCTURE_KINDS,
        staff_roles=STAFF_ROLES,
        status=status,
    )


@_page("admin.structures.read", managers=True)
async def structures_page(request: web.Request, session: Current) -> web.StreamResponse:
    return await _structures(request, session, [])


@_page("admin.structure.change", write=True, managers=True)
async def structure_change(request: web.Request, session: Current) -> web.StreamResponse:
    """One form per change: create a structure, its contact, a member's role."""
    form = await request.post()

    def value(name: str) -> str:
        got = form.get(name)
        return got.strip() if isinstance(got, str) else ""

    svc, caller = request.app[ADMIN], session.caller
    structure_id = request.match_info.get("structure_id", "")
    what = value("what")
    try:
        if what == "create":
            await asyncio.to_thread(svc.create_structure, caller, value("name"), value("kind"))
        elif what == "contact":
            await asyncio.to_thread(
                svc.set_contact, caller, structure_id, value("account"), value("mssante")
            )
        elif what == "staff":
            role = value("role")
            await asyncio.to_thread(
                svc.set_staff,
                caller,
                structure_id,
                value("user_id"),
                None if role == "remove" else role,
            )
        else:
            raise ApiError(400, "M_INVALID_PARAM", "action inconnue")
    except ApiError as exc:
        if exc.status == 403:
            raise
        return await _structures(request, session, [exc.message], exc.status)
    return redirect("/admin/structures")


# -- federation peers --------------------------------------------------------------------


async def _federation(
    request: web.Request,
    session: Current,
    errors: list[str],
    status: int = 200,
    form: dict[str, str] | None = None,
) -> web.Response:
    listing = await asyncio.to_thread(request.app[ADMIN].federation_peers, session.caller)
    return _show(
        request,
        "admin_federation.html",
        session,
        listing=listing,
        errors=errors,
        form=form or {},
        status=status,
    )


@_page("admin.federation.read")
async def federation_page(request: web.Request, session: Current) -> web.StreamResponse:
    return await _federation(request, session, [])


@_page("admin.federation.change", write=True)
async def federation_change(request: web.Request, session: Current) -> web.StreamResponse:
    """Add a peer server (with its reason) or remove one: the allow list the care-circle
    module reads, on every worker, within its refresh delay."""
    form = await request.post()

    def value(name: str) -> str:
        got = form.get(name)
        return got.strip() if isinstance(got, str) else ""

    svc, caller = request.app[ADMIN], session.caller
    try:
        if value("what") == "add":
            await asyncio.to_thread(svc.add_peer, caller, value("server"), value("reason"))
        elif value("what") == "remove":
            await asyncio.to_thread(svc.remove_peer, caller, value("server"))
        else:
            raise ApiError(400, "M_INVALID_PARAM", "action inconnue")
    except ApiError as exc:
        if exc.status == 403:
            raise
        kept = {"server": value("server")[:255], "reason": value("reason")[:500]}
        return await _federation(request, session, [exc.message], exc.status, kept)
    return redirect("/admin/federation")


# -- directory imports -------------------------------------------------------------------

IMPORTS = web.AppKey("directory_imports", set)


@_page("admin.directory.read")
async def directory_page(request: web.Request, session: Current) -> web.StreamResponse:
    return await _directory(request, session, [])


async def _directory(
    request: web.Request, session: Current, errors: list[str], status: int = 200
) -> web.Response:
    listed = await asyncio.to_thread(request.app[ADMIN].directory_imports, session.caller)
    running = len(request.app[IMPORTS])
    return _show(
        request,
        "admin_directory.html",
        session,
        imports=listed,
        running=running,
        errors=errors,
        status=status,
    )


@_page("admin.directory.import", write=True)
async def directory_import(request: web.Request, session: Current) -> web.StreamResponse:
    """Start an import of an uploaded extract; it runs in the background, its report shows
    on the page when it is done."""
    form = await request.post()
    upload = form.get("file")
    if not isinstance(upload, FileField):
        return await _directory(request, session, ["un fichier d'extrait est attendu"], 400)
    folder = Path(tempfile.mkdtemp(prefix="maillon-annuaire-"))
    name = Path(str(upload.filename or "extrait.txt")).name
    path = folder / name
    await asyncio.to_thread(path.write_bytes, upload.file.read())
    svc = request.app[ADMIN]
    try:
        await asyncio.to_thread(svc.start_directory_import, session.caller, path, name)
    except ApiError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        if exc.status == 403:
            raise
        return await _directory(request, session, [exc.message], exc.status)

    async def run() -> None:
        try:
            await asyncio.to_thread(svc.run_directory_import, path)
        except Exception:  # the report row says it never finished; the log says why
            log.exception("directory import failed")
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    task = asyncio.create_task(run())
    request.app[IMPORTS].add(task)
    task.add_done_callback(request.app[IMPORTS].discard)
    return redirect("/admin/annuaire")


def setup(app: web.Application, service: Administration) -> None:
    app[ADMIN] = service
    app[IMPORTS] = set()
    app.router.add_get("/admin/annuaire", directory_page)
    app.router.add_get("/admin/federation", federation_page)
    app.router.add_post("/admin/federation", federation_change)
    app.router.add_post("/admin/annuaire", directory_import)
    app.router.add_get("/admin/", home)
    app.router.add_get("/admin/parcours", pathways_page)
    app.router.add_get("/admin/journal", audit_page)
    app.router.add_get("/admin/structures", structures_page)
    app.router.add_post("/admin/structures", structure_change)
    app.router.add_post("/admin/structures/{structure_id}", structure_change)
    app.router.add_get("/admin/journal.csv", audit_csv)
    app.router.add_post("/admin/parcours/import", import_yaml)
    app.router.add_get("/admin/parcours/{pathway_id}/nouvelle-version", builder)
    app.router.add_post("/admin/parcours/{pathway_id}/versions", save)
    app.router.add_get("/admin/parcours/{pathway_id}/versions/{version}.yaml", export)
    app.router.add_post("/admin/parcours/{pathway_id}/versions/{version}/publier", publish)
    app.router.add_post("/admin/parcours/{pathway_id}/versions/{version}/restaurer", restore)
    app.router.add_get("/admin/parcours/{pathway_id}/migration", migration_page)
    app.router.add_post("/admin/parcours/{pathway_id}/migration", migrate)
