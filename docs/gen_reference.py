"""Writes the generated reference pages at every `mkdocs build` / `mkdocs serve` (mkdocs-gen-files runs it).

The rendering is devtools/reference.py; this script only gathers its inputs: the settings class, the typer
app, the app's OpenAPI document (built with the demo loyalty configuration, no Redis needed) and the event
models.
"""

import mkdocs_gen_files
import typer.main

from cli.main import app
from devtools.demo import DEMO_CONFIG
from devtools.reference import api_page, cli_page, events_page, settings_page
from runtime.settings import Settings
from service.app import create_app
from service.loyalty import load_loyalty_config


def openapi() -> dict:
    return create_app(Settings(), load_loyalty_config(DEMO_CONFIG)).openapi()


PAGES = {
    "reference/settings.md": lambda: settings_page(Settings),
    "reference/cli.md": lambda: cli_page(typer.main.get_command(app)),
    "reference/api.md": lambda: api_page(openapi()),
    "reference/events.md": events_page,
}

for path, render in PAGES.items():
    with mkdocs_gen_files.open(path, "w") as page:
        page.write(render())
