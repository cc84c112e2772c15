"""The patient's right of access (issue 17): a coordinator produces the copy of the
dossier for the patient — a PDF (identity, circle, the notes the patient's category may
read, tasks, agenda, forms, PPCS) and the FHIR Bundle — audited as a patient-access
export; a member who is not a coordinator may not. Real dossier API; the PDF is read
back."""

from __future__ import annotations

import base64
import io

from pypdf import PdfReader

from tests.harness.dossier import api, api_error, new_dossier
from tests.harness.stack import Stack


def test_patient_copy_pdf_and_bundle(stack: Stack) -> None:
    coordinator = stack.register("coordo")
    stack.bind_directory(coordinator.user_id, "infirmier", "Claire Dubois")
    nurse = stack.register("ide")
    stack.bind_directory(nurse.user_id, "infirmier", "Paul Girard")
    t = coordinator.access_token
    did = new_dossier(stack, t)["id"]
    api(stack, t, "POST", f"/v1/dossiers/{did}/circle", {"user_id": nurse.user_id, "role": "IDE"})
    api(stack, t, "POST", f"/v1/dossiers/{did}/notes", {"text": "Passage infirmier ce matin"})
    api(
        stack,
        t,
        "POST",
        f"/v1/dossiers/{did}/notes",
        {"text": "Réservé au médecin traitant", "visible_to_roles": ["MT"]},
    )
    api(
        stack,
        t,
        "POST",
        f"/v1/dossiers/{did}/tasks",
        {"title": "Commander le lit médicalisé", "assignee": nurse.user_id},
    )
    api(
        stack,
        t,
        "POST",
        f"/v1/dossiers/{did}/appointments",
        {
            "title": "Visite à domicile",
            "start": "2026-12-10T09:00:00Z",
            "end": "2026-12-10T10:00:00Z",
            "place": "Domicile",
        },
    )
    api(
        stack,
        t,
        "POST",
        f"/v1/dossiers/{did}/forms/evaluation-autonomie",
        {"answers": {"gir": "4", "vit_seul": True, "date_evaluation": "2026-11-20"}},
    )
    plan = {
        "problems": [{"problem": "Chutes à domicile", "goals": ["Sécuriser le logement"]}],
        "actions": [{"action": "Visite ergothérapeute", "who": "SSIAD", "when": "2026-12-03"}],
        "unmet_goals": [],
    }
    api(stack, t, "PUT", f"/v1/dossiers/{did}/ppcs", plan)

    refused = api_error(stack, nurse.access_token, "POST", f"/v1/dossiers/{did}/patient-copy")
    assert refused.status == 403
    copy = api(stack, t, "POST", f"/v1/dossiers/{did}/patient-copy")
    pdf = base64.b64decode(copy["pdf_base64"])
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages)
    text = " ".join(text.split())
    for expected in (
        "Copie de votre dossier de coordination",
        "Nom : MARTIN Jeanne Louise",
        "12 mars 1941",
        "Claire Dubois (infirmier",
        "Paul Girard (infirmier, infirmier",
        "Passage infirmier ce matin",
        "Commander le lit médicalisé",
        "Visite à domicile",
        "Évaluation de l'autonomie",
        "GIR (AGGIR) : 4",
        "Vit seul(e) : oui",
        "Chutes à domicile",
        "Sécuriser le logement",
        "Visite ergothérapeute",
    ):
        assert expected in text, (expected, text)
    assert "Réservé au médecin traitant" not in text, "a note the patient may not read"
    assert "@" not in text, "people by their names, never Matrix ids"

    kinds = [e["resource"]["resourceType"] for e in copy["bundle"]["entry"]]
    assert copy["bundle"]["resourceType"] == "Bundle"
    assert {"Patient", "CareTeam", "Task", "Appointment", "CarePlan"} <= set(kinds)
    assert kinds.count("DocumentReference") == 1, "the restricted note is left out"

    audit = api(stack, t, "GET", f"/v1/dossiers/{did}/audit")["entries"]
    exports = [e for e in audit if e["action"] == "patient_access.export"]
    assert sorted(e["allowed"] for e in exports) == [False, True], "refusal and export traced"
