"""How `pointsview deadletters` shows records: rich tables for people, JSON for machines."""

import json
from datetime import UTC, datetime

from rich.console import Console
from rich.table import Table

from consumers.deadletter_admin import DeadLetter

PREVIEW_CHARS = 60


def as_dict(letter: DeadLetter) -> dict:
    topic, partition, offset = letter.origin
    return {
        "id": letter.ref,
        "partition": letter.partition,
        "offset": letter.offset,
        "timestamp": _time(letter.timestamp),
        "reason": letter.reason,
        "origin": {"topic": topic, "partition": partition, "offset": offset},
        "key": (letter.key or b"").decode("utf-8", errors="replace"),
        "headers": letter.headers,
        "payload": letter.payload_text(),
    }


def _time(timestamp_ms: int) -> str:
    return datetime.fromtimestamp(timestamp_ms / 1000, UTC).isoformat(timespec="seconds")


def _preview(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= PREVIEW_CHARS else flat[: PREVIEW_CHARS - 1] + "…"


def render_list(letters: list[DeadLetter], topic: str, console: Console) -> None:
    table = Table(title=f"{len(letters)} dead letters in {topic}", title_justify="left")
    for column in ("id", "reason", "origin", "key", "payload"):
        table.add_column(column, overflow="fold")
    for letter in letters:
        origin_topic, partition, offset = letter.origin
        table.add_row(
            letter.ref,
            letter.reason,
            f"{origin_topic}[{partition}]@{offset}",
            (letter.key or b"").decode(errors="replace"),
            _preview(letter.payload_text()),
        )
    console.print(table)
    console.print("show one: pointsview deadletters show ID   re-drive: pointsview deadletters replay ID ...")


def render_show(letter: DeadLetter, console: Console) -> None:
    details = as_dict(letter)
    for name in ("id", "timestamp", "key"):
        console.print(f"[bold]{name}[/] {details[name]}")
    console.print("[bold]headers[/]")
    for name, value in letter.headers.items():
        console.print(f"  {name}: {value}", markup=False)
    console.print("[bold]payload[/]")
    try:
        console.print_json(data=json.loads(letter.value or b""))
    except ValueError:
        console.print(repr(letter.value), markup=False)
