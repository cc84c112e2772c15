"""One style for the dossier domain's operations: methods of ``DossierService`` (running in
``self.acting``), never free functions taking the service as their first argument."""

from __future__ import annotations

import inspect
from types import ModuleType

import pytest

from dossier_api.domain import attachments, care, core, fhir, reading, service

SERVICE_TYPES = tuple(
    cls
    for module in (core, service, care, fhir, attachments, reading)
    for _, cls in inspect.getmembers(module, inspect.isclass)
    if issubclass(cls, core.ServiceCore)
)


def _first_parameter_type(fn: object) -> object:
    assert callable(fn)
    try:
        params = list(inspect.signature(fn, eval_str=True).parameters.values())
    except NameError:  # an annotation only importable for type checking: judge its text
        params = list(inspect.signature(fn).parameters.values())
    return params[0].annotation if params else None


def _names_a_service(annotation: object) -> bool:
    if isinstance(annotation, str):
        return any(cls.__name__ in annotation for cls in SERVICE_TYPES)
    return isinstance(annotation, type) and issubclass(annotation, core.ServiceCore)


@pytest.mark.parametrize("module", [care, fhir, attachments, reading], ids=lambda m: m.__name__)
def test_no_public_function_takes_the_service_first(module: ModuleType) -> None:
    functions = [
        (name, fn)
        for name, fn in inspect.getmembers(module, inspect.isfunction)
        if fn.__module__ == module.__name__ and not name.startswith("_")
    ]
    assert functions, "the module's pure helpers are still module functions"
    free = [name for name, fn in functions if _names_a_service(_first_parameter_type(fn))]
    assert free == [], f"{module.__name__}: make these methods of DossierService: {free}"


def test_care_and_fhir_operations_are_methods_of_the_service() -> None:
    assert issubclass(service.DossierService, care.CareOperations)
    assert issubclass(service.DossierService, fhir.FhirExport)
    assert issubclass(service.DossierService, attachments.AttachmentOperations)
    assert issubclass(service.DossierService, reading.DossierReading)
    for name in (
        "submit_form",
        "forms",
        "put_ppcs",
        "get_ppcs",
        "add_appointment",
        "appointments",
        "my_appointments",
        "add_alert",
        "fhir_bundle",
        "save_form_draft",
        "form_draft",
        "ppcs_pdf",
        "add_attachment",
        "attachment",
        "timeline",
        "search",
    ):
        assert inspect.isfunction(getattr(service.DossierService, name, None)), name
