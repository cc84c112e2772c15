from dossier_api.server import run
from maillon.component_main import run_component

run_component("dossier_api", run)
