from coordination_bot.bot import run
from maillon.shared.component_main import run_component

run_component("coordination_bot", run, leased=True)
