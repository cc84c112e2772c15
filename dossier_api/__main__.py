from dossier_api.http.server import run
from maillon.shared.component_main import run_component

run_component("dossier_api", run)
