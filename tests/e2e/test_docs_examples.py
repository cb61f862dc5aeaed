"""Every curl example of README.md and docs/ runs against the demo data, as a reader would run it after
`make dev`, and answers 200 with the fields the docs show.

The demo data of `make dev` (devtools.synthetic's default load, 50 customers) and the events of the docs' own
`.jsonl` files (Getting started's first events) go through the session's broker and projector; the app is
built over them with the demo loyalty configuration (devtools/demo_loyalty.yaml), plus the OAuth client and
token secret the OAuth example says it needs. A JSON block right after a shell block of one curl is the
answer the docs show: every field it has must be in the real answer, with that value.
"""

import base64
import json
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import bcrypt
import httpx
import pytest
from pydantic import SecretStr

from devtools.demo import DEMO_CONFIG
from devtools.synthetic import Load, generate
from service.loyalty import LoyaltyConfig, load_loyalty_config
from tests.e2e.helpers import running_app

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>\w*)[^\n]*\n(?P<body>.*?)^(?P=indent)```", re.S | re.M)
HEREDOC = re.compile(r"^cat > \S+\.jsonl <<'EOF'\n(?P<lines>.*?)^EOF$", re.S | re.M)
DEMO_CUSTOMERS = 50  # `pointsview dev`'s default
OAUTH_KEY, OAUTH_SECRET = "pos.docdemo", "the-secret"  # what the OAuth example's page says to configure
JWT_SECRET = "the token secret of the docs' examples, 32 bytes or more"


@dataclass(frozen=True)
class Example:
    where: str
    commands: tuple[str, ...]  # the shell block's lines, continuations joined
    expected: dict | None  # the JSON the docs show after it (for a block of one curl)

    def __str__(self) -> str:
        url = re.search(r"https?://[^\s']+", self.commands[0])
        return f"{self.where}:{urlsplit(url[0]).path if url else self.commands[0][:40]}"


def _blocks(text: str) -> list[tuple[str, str]]:
    return [(m["lang"], m["body"]) for m in FENCE.finditer(text)]


def examples() -> list[Example]:
    found = []
    for path in DOCUMENTS:
        blocks = _blocks(path.read_text())
        for index, (lang, body) in enumerate(blocks):
            lines = tuple(line.strip() for line in body.replace("\\\n", " ").splitlines() if "curl " in line)
            if lang not in ("sh", "bash") or not lines:
                continue
            after = blocks[index + 1] if index + 1 < len(blocks) else ("", "")
            expected = json.loads(after[1]) if after[0] == "json" and len(lines) == 1 else None
            found.append(Example(str(path.relative_to(ROOT)), lines, expected))
    return found


def documented_events() -> list[dict]:
    """The lines of every `.jsonl` file the docs have the reader write."""
    return [
        json.loads(line)
        for path in DOCUMENTS
        for lang, body in _blocks(path.read_text())
        if lang in ("sh", "bash")
        for found in HEREDOC.finditer(body)
        for line in found["lines"].splitlines()
        if line.strip()
    ]


@dataclass
class Request:
    method: str
    target: str  # path and query
    headers: dict[str, str]
    body: bytes | None


def curl_request(args: list[str], variables: dict[str, str]) -> Request:
    """The request a curl command line sends (the options the docs use; any other fails the test)."""
    method, url, headers, body = None, None, {}, None
    words = iter(args)
    for word in words:
        word = re.sub(r"\$(\w+)", lambda m: variables[m[1]], word)
        if word in ("-s", "-i", "-f", "-S", "--silent", "--fail"):
            continue
        if word in ("-X", "--request"):
            method = next(words)
        elif word in ("-u", "--user"):
            user = next(words)
            headers["Authorization"] = "Basic " + base64.b64encode(user.encode()).decode()
        elif word in ("-H", "--header"):
            name, _, value = re.sub(r"\$(\w+)", lambda m: variables[m[1]], next(words)).partition(":")
            headers[name.strip()] = value.strip()
        elif word in ("-d", "--data"):
            body = next(words).encode()
        elif word.startswith("-"):
            pytest.fail(f"curl option {word} is not understood by this test: teach curl_request")
        else:
            url = word if "://" in word else f"http://{word}"
    assert url, args
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    return Request(method or ("POST" if body else "GET"), target, headers, body)


def contains(actual, expected) -> bool:
    """Every field of `expected` is in `actual` with that value (lists: element by element, a prefix)."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(k in actual and contains(actual[k], v) for k, v in expected.items())
    if isinstance(expected, list):
        return isinstance(actual, list) and len(actual) >= len(expected) and all(map(contains, actual, expected))
    return actual == expected


def demo_config() -> LoyaltyConfig:
    doc = load_loyalty_config(DEMO_CONFIG).model_dump()
    secret_hash = bcrypt.hashpw(OAUTH_SECRET.encode(), bcrypt.gensalt(rounds=4)).decode()
    doc["orgs"][0]["oauthClients"] = [{"key": OAUTH_KEY, "secretHash": secret_hash}]
    return LoyaltyConfig.model_validate(doc)


@pytest.fixture(scope="module")
async def demo(stack):
    """The demo data and the docs' own events, applied; an app over them as `make dev` serves it."""
    load = [json.loads(value) for _topic, _key, value in generate(Load(customers=DEMO_CUSTOMERS))]
    await stack.publish(*load, *documented_events(), timeout=120)
    settings = stack.settings.model_copy(update={"jwt_secret": SecretStr(JWT_SECRET)})
    async with running_app(settings, demo_config()) as (_app, client):
        yield client


def test_the_docs_have_curl_examples_and_the_oauth_page_names_what_the_test_configures():
    assert len(examples()) >= 5
    assert documented_events()
    page = (ROOT / "docs/how-to/api-clients.md").read_text()
    assert OAUTH_KEY in page and OAUTH_SECRET in page and "POINTSVIEW_JWT_SECRET" in page


@pytest.mark.parametrize("example", examples(), ids=str)
async def test_every_curl_example_answers_200_with_the_fields_shown(demo: httpx.AsyncClient, example: Example):
    variables: dict[str, str] = {}
    for command in example.commands:
        assigned = re.fullmatch(r"(\w+)=\$\((.*)\)", command)
        words = shlex.split(assigned[2] if assigned else command, comments=True)
        curl, rest = (words[: words.index("|")], words[words.index("|") + 1 :]) if "|" in words else (words, [])
        assert curl[0] == "curl", command
        request = curl_request(curl[1:], variables)
        response = await demo.request(request.method, request.target, headers=request.headers, content=request.body)
        assert response.status_code == 200, (example.where, command, response.text)
        if assigned:  # NAME=$(curl ... | python3 -c '...'): the pipeline's output, as the shell would keep it
            assert rest[0] == "python3", command
            filtered = subprocess.run([sys.executable, *rest[1:]], input=response.text, capture_output=True, text=True)
            assert filtered.returncode == 0, filtered.stderr
            variables[assigned[1]] = filtered.stdout.strip()
        elif example.expected is not None:
            assert contains(response.json(), example.expected), (example.where, response.json(), example.expected)
