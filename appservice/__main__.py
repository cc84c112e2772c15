from appservice.server import run
from maillon.shared.component_main import run_component

run_component("appservice", run, leased=True)
