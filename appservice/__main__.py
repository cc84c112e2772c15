from appservice.server import run
from maillon.component_main import run_component

run_component("appservice", run)
