"""Fuzzing the inputs that come from outside (issue 22): event records, and customer values read from Redis.

`python -m devtools.fuzz --inputs 1000000` feeds `check_event` mutated valid events and arbitrary bytes,
and `check_value` corrupted stored values (one in four inputs), in a plain loop (no hypothesis overhead;
tests/unit/test_fuzz.py runs the same checks under hypothesis, briefly, in CI). It prints the inputs
tried, the time, how each input ended, and every distinct failure (exception and where it was raised)
with the first input that caused it; exit 1 when there is one.
"""

import argparse
import json
import random
import sys
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from importlib import resources

from devtools.synthetic import Load, generate
from projections.dedup import DedupWindow, dedup_key
from projections.events import DATA_MODELS, InvalidEvent, parse_event
from projections.fold import fold_log
from projections.keys import Keys
from projections.plan import Stored, plan_customer
from projections.state import Customer, encode_customer
from projections.store import CorruptValue, customer_of, decode_value, stored_value
from service.balance import balance_body
from service.details import SERVED_EMBEDS, details_body
from service.endpoints import Found
from service.loyalty import load_loyalty_config

NOW_MS, WINDOW_MS = 1_767_225_600_000, 7 * 24 * 3_600_000
KEYS = Keys("fuzz")
EVENT_TYPES = tuple(DATA_MODELS)
FULL_DATA = [  # every optional field of each type at least once (the synthetic stream leaves some out)
    ("points.earned", {"programId": 7, "points": "1.5", "category": "MAIN", "expiresAt": "2026-06-30",
                       "currency": "Stars", "purchaseAmount": 20, "transactionId": "t-1"}),
    ("points.promoted", {"programId": 7, "points": 4, "fromCategory": "EXTERNAL_TRIGGER",
                         "expiresAt": "2026-06-30T00:00:00+02:00"}),
    ("points.returned", {"programId": 7, "points": 5, "category": "DELAYED_ACCRUAL", "purchaseAmount": "0.125"}),
    ("points.expired", {"programId": 7, "points": 3, "category": "MAIN"}),
    ("tier.changed", {"programId": 7, "slabSerial": 2, "slabName": "Gold", "slabDescription": "g",
                      "slabExpiryDate": "2027-01-01T00:00:00Z"}),
    ("customer.status.changed", {"label": "SUSPENDED", "reason": "chargeback"}),
    ("customer.merged", {"survivorId": 99}),
    ("customer.unmerged", {}),
    ("card.updated", {"cardNumber": "C-1", "seriesId": 195, "statusLabel": "DELETED", "seriesCode": "m",
                      "type": "DIGITAL", "statusReason": "lost", "customFields": {"k": [1, 2.5, None]},
                      "expiresAt": "2027-12-31"}),
    ("customer.updated", {"source": "WECHAT", "accountId": "a", "firstName": "F", "lastName": None,
                          "identifiers": [{"type": "cardnumber", "value": "C-1"}, {"type": "wechat", "value": "w"}],
                          "commChannels": [{"type": "email", "value": "e@x", "primary": True}],
                          "extendedFields": {"gender": "F", "n": 1.5, "l": [True, {"x": None}]}}),
]  # fmt: skip


def seed_events() -> list[bytes]:
    """Valid records of every event type and optional field: what the structured mutations start from."""
    stream = [value for _, _, value in generate(Load(customers=12, events_per_customer=30, seed=22))]
    extra = [
        json.dumps(_envelope(f"full-{n}", event_type, data)).encode() for n, (event_type, data) in enumerate(FULL_DATA)
    ]
    return stream + extra


def _envelope(event_id: str, event_type: str, data: dict) -> dict:
    return {
        "specVersion": 1,
        "eventId": event_id,
        "eventType": event_type,
        "orgId": 100737,
        "customerId": 1000,
        "occurredAt": "2026-01-08T10:03:21Z",
        "data": data,
    }


def seed_values(events: list[bytes]) -> list[tuple[bytes, list[bytes]]]:
    """Valid stored values (watermarks, a dedup window, a state) of the customers the seed events fold to,
    each with its customer's events (a probe that touches what the value holds: its cards, its profiles)."""
    window = DedupWindow().added([dedup_key(f"e{n}") for n in range(5)], NOW_MS, WINDOW_MS)
    window = window.added([dedup_key("later")], NOW_MS + 3_600_000, WINDOW_MS)
    marks = {"loyalty.points.v1:3": 41, "loyalty.customers.v1:0": 7}
    by_customer: dict[tuple[int, int], list[bytes]] = {}
    for raw in events:
        event = parse_event(raw)
        by_customer.setdefault(event.customer_key, []).append(raw)
    values = [(stored_value(Stored(c, marks, window)), by_customer[cid]) for cid, c in fold_log(events).items()]
    return values + [
        (stored_value(Stored(None, marks, window)), events),
        (stored_value(Stored(None, {}, DedupWindow())), events),
    ]


# --- the checks: what each input must do ---


def check_event(raw: bytes | None, states: list[bytes]) -> str:
    """The parser's contract: InvalidEvent (a dead letter), or an event that the projector plans, applies,
    indexes and stores, on no state and on each of `states` (stored values), and reads back unchanged."""
    try:
        event = parse_event(raw)
    except InvalidEvent:
        return "dead-lettered"
    record = ("loyalty.points.v1:3", 42, event)
    for value in (b"", *states):
        before = decode_value(value)
        write = plan_customer(before.customer, before.watermarks, before.seen, [record])
        seen = write.seen.added(write.applied_keys, NOW_MS, WINDOW_MS)
        _stored_again(Stored(write.customer, write.watermarks, seen))
        for change in write.index_changes:
            KEYS.identifier(change.key)
        for claim in write.card_claims:
            KEYS.card(claim.orgId, claim.cardNumber)
    return "applied"


def _stored_again(stored: Stored) -> None:
    encoded = stored_value(stored)
    if stored_value(decode_value(encoded)) != encoded or not _same(customer_of(encoded, ledger=True), stored.customer):
        raise AssertionError("the stored value does not decode to what was stored")


def _same(a: Customer | None, b: Customer | None) -> bool:
    """Compared as stored (a NaN in a free-form field is not equal to itself)."""
    return encode_customer(a) == encode_customer(b) if a and b else a is b is None


def check_value(value: bytes, probe: bytes) -> str:
    """The store's decoders' contract: CorruptValue, or a value that the projector applies `probe` (a valid
    event of its customer) onto and stores again, and that the API reads (or finds corrupt: a 503)."""
    try:
        stored = decode_value(value)
        customer = customer_of(value, ledger=True)
    except CorruptValue:
        return "corrupt"
    if not _same(customer, stored.customer):
        raise AssertionError("the API and the projector read different customers")
    check_event(probe, [value])
    try:
        _read(customer)
    except CorruptValue:
        return "decoded, 503 from the API"
    return "decoded"


ORG = load_loyalty_config(resources.files("devtools").joinpath("demo_loyalty.yaml")).orgs[0]


def _read(customer: Customer | None) -> None:
    """The API's answers for the customer: its balances and every part of its details."""
    if customer is not None:
        found = Found(customer.customerId, customer, [])
        found.json(balance_body(customer.customerId, customer, [p.programId for p in ORG.programs]))
        found.json(details_body(customer, ORG, SERVED_EMBEDS))


# --- mutations ---

HUGE = ["1" + "0" * 30, "9" * 5000, "1e999", "-1e999", "1E+2", "1.0000", "0.0001", "-0", "1" + "0" * 15 + ".5"]
STRINGS = [
    "", " ", "0", "-1", "NaN", "Infinity", "-Infinity", "nan", "1e3", "0x10", "1_000", "+1", ".5", "5.", "1.2345",
    "999999999999999.999", "1000000000000.001", "-0.000", "\u0000", "\ud800", "\udfff\ud800", "é", "😀", "\u202e",
    "MAIN", "DELAYED_ACCRUAL", "POINTS", "INSTORE", "DELETED", "cardnumber", "EMAIL",
    "0000-01-01T00:00:00Z", "0001-01-01T00:00:00+00:01", "9999-12-31T23:59:59-00:01", "9999-12-31",
    "0001-01-01", "2026-02-30", "2026-01-08T24:00:00Z", "2026-01-08T23:59:60Z", "2026-01-08T10:03:21.1234567890Z",
    "2026-01-08 10:03:21z", "2026-01-08T10:03:21+23:59", "2026-01-08T10:03:21+99:99", "2026-01-08",
    "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "2026-01-08T10:03:21.999999+14:00", "1000000000000",
    "999999999999.999", "0.001", "1000000000000.000", "-999999999999.999", "é" * 64, "😀" * 65, "A" * 64,
]  # fmt: skip
NUMBERS = [0, -1, 1, 2, 2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63) - 1, 10**15, 0.5, -2.5, 1e308]


@dataclass(frozen=True)
class RawJson:
    """JSON written as this text: numbers json.dumps cannot write (1e999, 5,000 digits), deep nesting."""

    text: str


def interesting(rng: random.Random, depth: int = 0) -> object:
    roll = rng.randrange(10)
    if roll == 0:
        return RawJson(rng.choice(HUGE))
    if roll < 3:
        return rng.choice(NUMBERS)
    if roll < 6:
        return rng.choice(STRINGS)
    if roll == 6:
        return rng.choice([None, True, False, [], {}, "x" * rng.choice([64, 65, 128, 129, 256, 257, 100_000])])
    if roll == 7:
        levels = rng.choice([2, 30, 31, 32, 33, 100, 500, rng.randrange(900, 1000), 3000, 100_000])
        opening, closing = ("[", "]") if rng.random() < 0.5 else ('{"a":', "}")
        return RawJson(opening * levels + "1" + closing * levels)
    return [interesting(rng, depth + 1)] if depth < 3 else {"k": interesting(rng, depth + 1)}


def similar(rng: random.Random, value: object) -> object:
    """An extreme value of the same kind: the change most likely to pass the parser and reach apply."""
    if isinstance(value, bool) or value is None:
        return rng.choice([True, False, None])
    if isinstance(value, int):
        return rng.choice(NUMBERS)
    if isinstance(value, str):
        return rng.choice(STRINGS)
    return interesting(rng)


def mutate_doc(rng: random.Random, doc: dict) -> object:
    """One change at a random place: a value replaced by an extreme one of its kind or by anything, swapped
    to another type, removed, or a field added; sometimes the event's type changed."""
    roll = rng.randrange(12)
    if roll == 0:
        doc["eventType"] = rng.choice(EVENT_TYPES)
        return doc
    if roll == 1:
        return interesting(rng)
    parent, key = _place(rng, doc)
    if roll == 2 and isinstance(parent, dict):
        del parent[key]
    elif roll == 3 and isinstance(parent, dict):
        parent[rng.choice(["extra", "points", "expiresAt", "category", "currency", "\u0000", ""])] = interesting(rng)
    elif roll == 4:
        parent[key] = rng.choice([[parent[key]], {"v": parent[key]}, str(parent[key]), RawJson("1e2")])
    elif roll == 5:
        parent[key] = interesting(rng)
    else:
        parent[key] = similar(rng, parent[key])
    return doc


def _place(rng: random.Random, doc: dict) -> tuple[dict | list, str | int]:
    """A random (container, key) of the document, found by a walk down from the top."""
    parent: dict | list = doc
    key: str | int = rng.choice(list(doc))
    while isinstance(parent[key], (dict, list)) and parent[key] and rng.random() < 0.7:
        parent = parent[key]
        key = rng.choice(list(parent)) if isinstance(parent, dict) else rng.randrange(len(parent))
    return parent, key


def dumps(doc: object, ascii_only: bool = True) -> bytes:
    """JSON bytes, RawJsons written as their text; non-ASCII escaped, or in UTF-8 (lone surrogates too)."""
    raw: list[str] = []

    def default(value: object) -> str:
        if isinstance(value, RawJson):
            raw.append(value.text)
            return f"\u0001RAW{len(raw) - 1}\u0001"
        raise TypeError(type(value).__name__)

    text = json.dumps(doc, default=default, ensure_ascii=ascii_only)
    for n, number in enumerate(raw):
        text = text.replace(json.dumps(f"\u0001RAW{n}\u0001"), number)
    return text.encode("utf-8", "surrogatepass")


def mutate_bytes(rng: random.Random, raw: bytes, others: list[bytes]) -> bytes:
    data = bytearray(raw)
    for _ in range(rng.choice([1, 1, 1, 2, 4, 16])):
        if not data:
            break
        roll, at = rng.randrange(7), rng.randrange(len(data))
        if roll == 0:
            data[at] ^= 1 << rng.randrange(8)
        elif roll == 1:
            data[at] = rng.randrange(256)
        elif roll == 2:
            del data[at:]
        elif roll == 3:
            del data[at : at + rng.randrange(1, 16)]
        elif roll == 4:
            data[at:at] = rng.randbytes(rng.randrange(1, 8))
        elif roll == 5:
            data[at:at] = data[at : at + rng.randrange(1, 64)]
        else:
            other = rng.choice(others)
            data[at:] = other[rng.randrange(len(other) or 1) :]
    return bytes(data)


def event_input(rng: random.Random, seeds: list[bytes]) -> bytes | None:
    roll = rng.random()
    if roll < 0.05:
        return rng.randbytes(rng.randrange(64))
    if roll < 0.3:
        return mutate_bytes(rng, rng.choice(seeds), seeds)
    doc: object = json.loads(rng.choice(seeds))
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        if isinstance(doc, dict) and doc:
            doc = mutate_doc(rng, doc)
    return dumps(doc, rng.random() < 0.5)


def value_input(rng: random.Random, values: list[tuple[bytes, list[bytes]]]) -> tuple[bytes, bytes]:
    """A corrupted stored value, and a probe event of its customer."""
    value, probes = rng.choice(values)
    if rng.random() < 0.05:
        return rng.randbytes(rng.randrange(256)), rng.choice(probes)
    return mutate_bytes(rng, value, [v for v, _ in values]), rng.choice(probes)


# --- the run ---


@dataclass
class Failure:
    count: int
    message: str
    example: bytes | None  # the first input that failed there


@dataclass
class Findings:
    outcomes: Counter = field(default_factory=Counter)
    failures: dict[tuple[str, str], Failure] = field(default_factory=dict)  # by (exception type, where raised)

    def record(self, check, *args) -> None:
        try:
            self.outcomes[check(*args)] += 1
        except Exception as exc:  # what the run is looking for
            self.outcomes["FAILED"] += 1
            where = traceback.extract_tb(exc.__traceback__)[-1]
            key = (type(exc).__name__, f"{where.filename}:{where.lineno}")
            self.failures.setdefault(key, Failure(0, str(exc)[:200], args[0])).count += 1


def run(inputs: int, seed: int, report_every: float = 30.0) -> Findings:
    rng, findings = random.Random(seed), Findings()
    events = seed_events()
    values = seed_values(events)
    started = last = time.monotonic()
    for n in range(inputs):
        if n % 4 == 3:
            findings.record(check_value, *value_input(rng, values))
        else:
            findings.record(check_event, event_input(rng, events), [rng.choice(values)[0]])
        if time.monotonic() - last > report_every:
            last = time.monotonic()
            print(f"{n + 1:,} inputs, {last - started:.0f} s, {dict(findings.outcomes)}", file=sys.stderr)
    return findings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.fuzz", description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=22)
    args = parser.parse_args(argv)
    started = time.monotonic()
    findings = run(args.inputs, args.seed)
    seconds = time.monotonic() - started
    print(f"{args.inputs:,} inputs (seed {args.seed}) in {seconds:.0f} s ({args.inputs / seconds:,.0f}/s)")
    print("outcomes: " + ", ".join(f"{name} {count:,}" for name, count in findings.outcomes.most_common()))
    for (error, where), failure in findings.failures.items():
        print(f"FAILED {failure.count:,} times: {error} at {where}: {failure.message}")
        print(f"  first input: {(failure.example or b'')[:300]!r}")
    return 1 if findings.failures else 0


if __name__ == "__main__":
    sys.exit(main())
