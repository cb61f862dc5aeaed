"""The docs cannot go stale: the generated reference pages cover the code, and what the hand-written pages and
README.md name (settings, commands, metrics, error codes, links, event examples) exists and behaves as they say.

The curl examples run against the demo data in tests/e2e/test_docs_examples.py; `mkdocs build --strict` (in
`make test`) checks the links and anchors inside docs/.
"""

import asyncio
import json
import re
import shlex
from pathlib import Path

import httpx
import msgspec
import pytest
import typer.main

from cli.main import app as cli_app
from devtools.demo import AUTH_HEADERS, DEMO_CONFIG
from devtools.reference import (
    EFFECTS,
    EXAMPLES,
    FIELD_RULES,
    api_page,
    cli_page,
    env_name,
    events_page,
    example_envelope,
    settings_page,
)
from projections.events import DATA_MODELS, Envelope, InvalidEvent, parse_event
from runtime.settings import Settings
from service.app import create_app
from service.loyalty import load_loyalty_config

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted((ROOT / "docs").rglob("*.md"))
DOCUMENTS = [ROOT / "README.md", *PAGES]
# Environment variables of the tests and tools, not settings
NOT_SETTINGS = {"POINTSVIEW_TEST_REDIS", "POINTSVIEW_TESTCONTAINERS", "POINTSVIEW_FUZZ_EXAMPLES"}


def text_of(path: Path) -> str:
    return path.read_text()


FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>\w*)[^\n]*\n(?P<body>.*?)^(?P=indent)```", re.S | re.M)


def code_blocks(text: str, languages: tuple[str, ...]) -> list[str]:
    return [m["body"] for m in FENCE.finditer(text) if m["lang"] in languages]


# --- settings ---


def test_every_setting_has_a_description_and_the_reference_lists_each_once():
    page = settings_page(Settings)
    for name, field in Settings.model_fields.items():
        variable = env_name(name, field)
        assert field.description, f"{name}: add Field(description=...) in runtime/settings.py (the docs show it)"
        assert page.count(f"| `{variable}` |") == 1, variable
    rows = re.findall(r"^\| `([A-Z_0-9]+)` \|", page, re.M)
    assert len(rows) == len(Settings.model_fields)


def test_every_variable_the_docs_name_is_a_setting():
    settings = {env_name(name, field) for name, field in Settings.model_fields.items()}
    for path in DOCUMENTS:
        for variable in set(re.findall(r"\bPOINTSVIEW_[A-Z0-9_]*[A-Z0-9]\b", text_of(path))):
            assert variable in settings | NOT_SETTINGS, f"{path.relative_to(ROOT)} names {variable}: no such setting"


# --- the CLI ---

COMMAND = typer.main.get_command(cli_app)


def _commands(command, path=()) -> dict[tuple[str, ...], object]:
    found = {path: command}
    ctx = command.context_class(command, info_name="pointsview")
    for name in getattr(command, "list_commands", lambda _ctx: [])(ctx):
        found |= _commands(command.get_command(ctx, name), (*path, name))
    return found


COMMANDS = _commands(COMMAND)


def test_the_cli_reference_has_every_command_and_option():
    page = cli_page(COMMAND)
    for path, command in COMMANDS.items():
        assert f"`{' '.join(('pointsview', *path))}`" in page, path
        for param in command.params:
            if param.param_type_name == "option":
                assert param.opts[0] in page, (path, param.opts)


def test_every_command_the_docs_name_exists():
    for path in DOCUMENTS:
        for words in re.findall(r"`pointsview ((?:[a-z][a-z-]* ?)+)", text_of(path)):
            named, node = [], ()
            for word in words.split():
                if (*node, word) not in COMMANDS:
                    break
                node = (*node, word)
                named.append(word)
            assert named, f"{path.relative_to(ROOT)}: `pointsview {words}` is not a command"


def command_lines() -> list[tuple[Path, list[str]]]:
    """Every `pointsview ...` line of the docs' shell blocks, as its arguments (comments dropped)."""
    found = []
    for path in DOCUMENTS:
        for block in code_blocks(text_of(path), ("sh", "bash")):
            for line in block.replace("\\\n", " ").splitlines():
                words = shlex.split(line, comments=True)
                while words and words[0] != "pointsview" and not words[0].endswith("/pointsview"):
                    words = words[1:]  # `docker compose exec projector pointsview status`, `.venv/bin/pointsview`
                if words:
                    found.append((path, words[1:]))
    return found


COMMAND_LINES = command_lines()


@pytest.mark.parametrize(
    "where, args", COMMAND_LINES, ids=[f"{p.relative_to(ROOT)}:{' '.join(a)}" for p, a in COMMAND_LINES]
)
def test_every_command_line_of_the_docs_parses(where, args, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for arg in args:
        if arg.endswith(".jsonl"):
            (tmp_path / arg).write_text("")  # `produce --file` wants an existing file
    node, rest = (), list(args)
    while rest and (*node, rest[0]) in COMMANDS:
        node, rest = (*node, rest[0]), rest[1:]
    command = COMMANDS[node]
    try:
        command.make_context(" ".join(("pointsview", *node)), rest)
    except Exception as exc:  # click's UsageError, or typer's copy of it
        pytest.fail(f"{where.relative_to(ROOT)}: pointsview {' '.join(args)}: {exc}")


# --- the event contract ---


def test_every_event_type_has_an_example_and_an_effect():
    assert set(EXAMPLES) == set(DATA_MODELS) == set(EFFECTS)


@pytest.mark.parametrize("event_type", list(DATA_MODELS))
def test_each_example_is_applied_and_each_required_rule_holds(event_type):
    example = example_envelope(event_type, EXAMPLES[event_type])
    assert parse_event(json.dumps(example).encode()).eventType == event_type
    for field, rule in FIELD_RULES.items():
        if rule.startswith("required") and field in EXAMPLES[event_type]:
            data = {k: v for k, v in EXAMPLES[event_type].items() if k != field}
            with pytest.raises(InvalidEvent, match=field):
                parse_event(json.dumps(example_envelope(event_type, data)).encode())


def test_every_field_rule_names_a_field():
    fields = {f.name for model in (*DATA_MODELS.values(), Envelope) for f in msgspec.structs.fields(model)}
    assert set(FIELD_RULES) <= fields


def test_the_events_page_shows_every_type():
    page = events_page()
    for event_type in DATA_MODELS:
        assert f"### {event_type}\n" in page


# --- the HTTP API ---


def demo_app():
    return create_app(Settings(REDIS_URL="redis://127.0.0.1:1/0"), load_loyalty_config(DEMO_CONFIG))


def test_the_api_reference_has_every_operation_and_parameter():
    openapi = demo_app().openapi()
    page = api_page(openapi)
    for path, methods in openapi["paths"].items():
        for method, operation in methods.items():
            assert f"### {method.upper()} `{path}`" in page
            for parameter in operation.get("parameters", []):
                assert f"| `{parameter['name']}` |" in page


ENDPOINTS = {  # the columns of docs/reference/errors.md, with a query that resolves
    "UB": "/v2/customers/1000/points/balance?x=1",
    "LB": "/v2/customers/lookup/points/balance?source=INSTORE&identifierName=mobile&identifierValue=9000001000",
    "LD": "/v2/customers/lookup/customerDetails?source=INSTORE&identifierName=mobile&identifierValue=9000001000",
    "UL": "/v2/customers/1000/points/ledger?x=1",
    "LL": "/v2/customers/lookup/points/ledger?source=INSTORE&identifierName=mobile&identifierValue=9000001000",
}
TRIGGERS = {  # code -> what provokes it, where the endpoint has that parameter
    "1632": {"UB": "/v2/customers/abc/points/balance", "UL": "/v2/customers/abc/points/ledger"},
    "1212": {e: f"{url}&entityType=SHOP" for e, url in ENDPOINTS.items()},
    "11013": {e: f"{url}&source=" for e, url in ENDPOINTS.items()},
    "8003": {e: f"{url}&source=SHOP" for e, url in ENDPOINTS.items()},
    "8013": {e: f"{url}&identifierName=phone" for e, url in ENDPOINTS.items()},
}


def documented_codes(page: str) -> dict[str, set[str]]:
    """code -> the endpoint columns marked x in the error codes table."""
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in page.splitlines() if line.startswith("|")]
    header = next(row for row in rows if row[:2] == ["code", "HTTP"])
    return {row[0]: {column for column, mark in zip(header, row) if mark == "x"} for row in rows if row[0].isdigit()}


def test_the_error_codes_page_says_which_endpoint_answers_which_validation_error():
    """The codes checked before any Redis read, per endpoint, against an app without Redis."""
    documented = documented_codes(text_of(ROOT / "docs/reference/errors.md"))

    async def answered() -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        transport = httpx.ASGITransport(app=demo_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://docs") as client:
            for code, requests in TRIGGERS.items():
                for endpoint, url in requests.items():
                    body = (await client.get(url, headers=AUTH_HEADERS)).json()
                    if any(str(e["code"]) == code for e in body.get("errors", [])):
                        found.setdefault(code, set()).add(endpoint)
        return found

    found = asyncio.run(answered())
    for code in TRIGGERS:
        assert documented[code] == found.get(code, set()), code


# --- metrics ---


def test_the_metrics_table_lists_every_metric_the_code_exports():
    from prometheus_client import REGISTRY

    import consumers.metrics  # noqa: F401  (registers the projector's metrics)
    import service.metrics  # noqa: F401

    exported = {
        family.name + ("_total" if family.type == "counter" else "")
        for family in REGISTRY.collect()
        if family.name.startswith("pointsview_")
    }
    page = text_of(ROOT / "docs/how-to/monitoring.md")
    listed = set(re.findall(r"^\|[^|]*\| `(pointsview_[a-z_]+)[`{]", page, re.M))
    assert listed == exported


# --- links ---


def test_every_relative_link_of_the_readme_points_to_a_file():
    text = text_of(ROOT / "README.md")
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    assert links
    for link in links:
        if not re.match(r"^[a-z]+://", link):
            assert (ROOT / link).is_file(), f"README.md links to {link}: no such file"
