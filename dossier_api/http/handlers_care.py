"""HTTP handlers for pathways, forms, PPCS, agenda (iCalendar), alerts and FHIR export."""

from __future__ import annotations

import asyncio
import base64
import json

from aiohttp import web

from dossier_api.domain import care, shapes
from dossier_api.http import schemas as S
from dossier_api.http.handlers import body, caller, svc
from dossier_api.http.registry import route
from maillon.shared.text import displayable


def _dossier(request: web.Request) -> str:
    return request.match_info["dossier_id"]


@route(
    "GET",
    "/v1/pathways",
    "Parcours configurés (formulaires, rôles, tâches)",
    S.PATHWAYS,
    tag="parcours",
)
async def get_pathways(_: web.Request) -> web.Response:
    return web.json_response(shapes.PathwaysOut(pathways=care.pathways_json()))


@route(
    "POST",
    "/v1/dossiers/{dossier_id}/forms/{form_id}",
    "Remplir un formulaire du parcours",
    S.FORM,
    status=201,
    body=S.FORM_IN,
)
async def submit_form(request: web.Request) -> web.Response:
    row = await asyncio.to_thread(
        svc(request).submit_form,
        caller(request),
        _dossier(request),
        request.match_info["form_id"],
        body(request),
    )
    return web.json_response(row, status=201)


@route("GET", "/v1/dossiers/{dossier_id}/forms", "Formulaires remplis", S.FORMS)
async def get_forms(request: web.Request) -> web.Response:
    rows = await asyncio.to_thread(svc(request).forms, caller(request), _dossier(request))
    return web.json_response(shapes.FormsOut(forms=rows))


@route(
    "PUT",
    "/v1/dossiers/{dossier_id}/ppcs",
    "Mettre à jour le PPCS (nouvelle version)",
    S.PPCS,
    body=S.PPCS_IN,
)
async def put_ppcs(request: web.Request) -> web.Response:
    plan = await asyncio.to_thread(
        svc(request).put_ppcs, caller(request), _dossier(request), body(request)
    )
    return web.json_response(plan)


@route("GET", "/v1/dossiers/{dossier_id}/ppcs", "PPCS en vigueur", S.PPCS)
async def get_ppcs(request: web.Request) -> web.Response:
    plan = await asyncio.to_thread(svc(request).get_ppcs, caller(request), _dossier(request))
    return web.json_response(plan)


@route(
    "POST",
    "/v1/dossiers/{dossier_id}/appointments",
    "Ajouter un rendez-vous à l'agenda",
    S.APPOINTMENT,
    status=201,
    body=S.APPOINTMENT_IN,
)
async def add_appointment(request: web.Request) -> web.Response:
    row = await asyncio.to_thread(
        svc(request).add_appointment, caller(request), _dossier(request), body(request)
    )
    return web.json_response(row, status=201)


@route("GET", "/v1/dossiers/{dossier_id}/appointments", "Agenda du dossier", S.APPOINTMENTS)
async def get_appointments(request: web.Request) -> web.Response:
    rows = await asyncio.to_thread(svc(request).appointments, caller(request), _dossier(request))
    return web.json_response(shapes.AppointmentsOut(appointments=rows))


@route(
    "GET",
    "/v1/dossiers/{dossier_id}/agenda.ics",
    "Agenda du dossier (iCalendar)",
    S.ICS,
    content_type="text/calendar",
)
async def dossier_ics(request: web.Request) -> web.Response:
    rows = await asyncio.to_thread(svc(request).appointments, caller(request), _dossier(request))
    text = care.to_icalendar(rows, "Agenda du dossier", request.host.split(":")[0])
    return web.Response(text=text, content_type="text/calendar", charset="utf-8")


@route(
    "GET",
    "/v1/me/agenda.ics",
    "Mon agenda, tous dossiers (iCalendar)",
    S.ICS,
    content_type="text/calendar",
    tag="compte",
)
async def my_ics(request: web.Request) -> web.Response:
    rows = await asyncio.to_thread(svc(request).my_appointments, caller(request))
    text = care.to_icalendar(rows, "Mes rendez-vous Maillon", request.host.split(":")[0])
    return web.Response(text=text, content_type="text/calendar", charset="utf-8")


@route(
    "POST",
    "/v1/dossiers/{dossier_id}/alerts",
    "Alerter des membres du cercle",
    S.ALERT,
    status=201,
    body=S.ALERT_IN,
)
async def add_alert(request: web.Request) -> web.Response:
    row = await asyncio.to_thread(
        svc(request).add_alert, caller(request), _dossier(request), body(request)
    )
    return web.json_response(row, status=201)


@route("GET", "/v1/dossiers/{dossier_id}/alerts", "Alertes du dossier", S.ALERTS)
async def dossier_alerts(request: web.Request) -> web.Response:
    rows = await asyncio.to_thread(svc(request).alerts, caller(request), _dossier(request))
    return web.json_response(shapes.AlertsOut(alerts=rows))


@route(
    "POST",
    "/v1/dossiers/{dossier_id}/merge",
    "Fusionner deux dossiers de la même personne (référent d'identitovigilance de la "
    "structure, administrateur) : le plus ancien reste",
    S.MERGE,
    body=S.MERGE_IN,
)
async def merge_dossiers(request: web.Request) -> web.Response:
    payload = body(request)
    result = await asyncio.to_thread(
        svc(request).merge_dossiers,
        caller(request),
        _dossier(request),
        payload["other_dossier_id"],
        payload["reason"],
    )
    return web.json_response(result)


@route(
    "POST",
    "/v1/dossiers/{dossier_id}/patient-copy",
    "Droit d'accès du patient : copie du dossier (PDF et Bundle FHIR), par un coordinateur",
    S.PATIENT_COPY,
)
async def patient_copy(request: web.Request) -> web.Response:
    pdf, bundle = await asyncio.to_thread(
        svc(request).patient_copy, caller(request), _dossier(request)
    )
    body = shapes.PatientCopyOut(pdf_base64=base64.b64encode(pdf).decode("ascii"), bundle=bundle)
    return web.json_response(body, headers={"Cache-Control": "no-store"})


@route(
    "GET",
    "/v1/dossiers/{dossier_id}/fhir",
    "Export FHIR R4 du dossier (Bundle)",
    S.FHIR_BUNDLE,
    content_type="application/fhir+json",
)
async def get_fhir(request: web.Request) -> web.Response:
    bundle = await asyncio.to_thread(svc(request).fhir_bundle, caller(request), _dossier(request))
    # UTF-8 without escapes, every stored string encodable (a lone surrogate shows as U+FFFD).
    text = displayable(json.dumps(bundle, ensure_ascii=False))
    return web.Response(text=text, content_type="application/fhir+json", charset="utf-8")
