"""The inputs that come from outside, fuzzed (issue 22).

A record either parses into an event that the projector plans, applies and stores (and reads back), or is
dead-lettered (InvalidEvent); a stored value either decodes into a customer that the API reads and the
projector applies an event onto, or raises CorruptValue. Nothing else, for arbitrary bytes, mutated valid
events and corrupted valid values (devtools/fuzz.py holds the checks and the mutations' raw material).

CI runs a few hundred examples of each; POINTSVIEW_FUZZ_EXAMPLES=1000000 makes a long run (the plain loop
`python -m devtools.fuzz --inputs 1000000` is faster). Below the properties: the crashes the fuzzing
found, one test each.
"""

import json
import os
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devtools import fuzz
from projections.dedup import DedupWindow, dedup_key
from projections.events import MAX_NESTING, InvalidEvent, parse_event
from projections.plan import Stored, plan_customer
from projections.state import Balance, CorruptValue, Customer, Profile, decode_customer, encode_customer
from projections.store import customer_of, decode_marks, decode_value, stored_value
from tests.support import event
from tests.unit.builders import adjusted, encode

EXAMPLES = int(os.environ.get("POINTSVIEW_FUZZ_EXAMPLES", "300"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
SEEDS = fuzz.seed_events()
VALUES = fuzz.seed_values(SEEDS)
STATES = [value for value, _ in VALUES[:3]]


def assert_applied_or_dead_lettered(raw: bytes | None) -> None:
    assert fuzz.check_event(raw, STATES) in ("applied", "dead-lettered")


# --- properties ---

json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=80),
    st.sampled_from(fuzz.STRINGS),
    st.sampled_from(fuzz.NUMBERS),
    st.sampled_from(fuzz.HUGE).map(fuzz.RawJson),
    st.integers(min_value=1, max_value=1200).map(lambda depth: fuzz.RawJson("[" * depth + "1" + "]" * depth)),
)
json_values = st.recursive(
    json_leaves, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
)


@st.composite
def mutated_events(draw) -> bytes:
    """A valid event with one to three changes, each at a place found by a walk down from the top: a value
    replaced (by an extreme one of its kind, or any JSON), removed, wrapped, or a field added."""
    doc = json.loads(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 3))):
        parent, key = _place(draw, doc)
        kind = draw(st.sampled_from(["similar", "any", "remove", "add", "wrap", "type"]))
        if kind == "remove" and isinstance(parent, dict):
            del parent[key]
        elif kind == "add" and isinstance(parent, dict):
            parent[draw(st.text(max_size=12))] = draw(json_values)
        elif kind == "wrap":
            parent[key] = draw(st.sampled_from([[parent[key]], {"v": parent[key]}, str(parent[key])]))
        elif kind == "type":
            doc["eventType"] = draw(st.sampled_from(fuzz.EVENT_TYPES))
        else:
            parent[key] = draw(json_values) if kind == "any" else _similar(draw, parent[key])
    return fuzz.dumps(doc, draw(st.booleans()))


def _place(draw, doc: dict) -> tuple[dict | list, str | int]:
    parent: dict | list = doc
    key: str | int = draw(st.sampled_from(sorted(doc)))
    while isinstance(parent[key], (dict, list)) and parent[key] and draw(st.booleans()):  # type: ignore[index]
        parent = parent[key]  # type: ignore[index]
        key = draw(st.sampled_from(sorted(parent)) if isinstance(parent, dict) else st.integers(0, len(parent) - 1))
    return parent, key


def _similar(draw, value: object) -> object:
    if isinstance(value, bool) or value is None:
        return draw(st.sampled_from([True, False, None]))
    if isinstance(value, int):
        return draw(st.sampled_from(fuzz.NUMBERS) | st.integers(min_value=-(2**65), max_value=2**65))
    if isinstance(value, str):
        return draw(st.sampled_from(fuzz.STRINGS) | st.text(max_size=70))
    return draw(json_values)


@st.composite
def corrupted(draw, originals: list[bytes]) -> bytes:
    """A valid input with bits flipped, bytes replaced, cut, removed, inserted or repeated."""
    data = bytearray(draw(st.sampled_from(originals)))
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        kind = draw(st.sampled_from(["flip", "byte", "truncate", "remove", "insert", "repeat"]))
        if kind == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "byte":
            data[at] = draw(st.integers(0, 255))
        elif kind == "truncate":
            del data[at:]
        elif kind == "remove":
            del data[at : at + draw(st.integers(1, 16))]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        else:
            data[at:at] = data[at : at + draw(st.integers(1, 64))]
    return bytes(data)


@FUZZ
@given(st.binary(max_size=600))
def test_any_bytes_are_applied_or_dead_lettered(raw):
    assert_applied_or_dead_lettered(raw)


@FUZZ
@given(mutated_events())
def test_mutated_events_are_applied_or_dead_lettered(raw):
    assert_applied_or_dead_lettered(raw)


@FUZZ
@given(corrupted(SEEDS))
def test_corrupted_event_bytes_are_applied_or_dead_lettered(raw):
    assert_applied_or_dead_lettered(raw)


@FUZZ
@given(st.binary(max_size=600) | corrupted([value for value, _ in VALUES]), st.sampled_from(SEEDS))
def test_a_stored_value_is_read_or_corrupt(value, probe):
    assert fuzz.check_value(value, probe) in ("decoded", "decoded, 503 from the API", "corrupt")


@FUZZ
@given(st.binary(max_size=300) | corrupted([value for value, _ in VALUES]))
def test_each_part_of_a_stored_value_decodes_or_is_corrupt(raw):
    for decode in (decode_marks, DedupWindow.decode, decode_customer):
        try:
            decode(raw)
        except CorruptValue:
            pass


# --- what the fuzzing found: events ---


def earned(**envelope) -> dict:
    return {**event("points.earned", {"programId": 973, "points": 5, "category": "MAIN"}), **envelope}


@pytest.mark.parametrize(
    "raw, reason",
    [
        (b"[" * 5000 + b"]" * 5000, "not JSON"),  # not an object, nested deeper than a decoder recurses
        (b'973, "points": 1}', "not JSON"),  # not an object, then trailing characters
        (encode(earned(specVersion="<n>"), n="9" * 5000), "unsupported specVersion 999"),
        (encode(earned(occurredAt="9999-12-31T23:59:59-00:01")), "occurredAt"),  # past year 9999 in UTC
        (encode(earned(occurredAt="0001-01-01T00:00:00+00:01")), "occurredAt"),  # before year 1 in UTC
        (json.dumps(earned()).replace('"MAIN"', '"MA\xffIN"').encode("latin-1"), "not JSON"),  # data not UTF-8
        (encode(earned(customerId=10**30)), "customerId"),  # stored: beyond what MessagePack holds
    ],
)  # fmt: skip
def test_records_that_crashed_the_parser_are_dead_lettered(raw, reason):
    with pytest.raises(InvalidEvent, match=reason):
        parse_event(raw)
    assert_applied_or_dead_lettered(raw)


@pytest.mark.parametrize(
    "envelope, data", [({"orgId": 2**63}, {}), ({"customerId": 2**63}, {}), ({}, {"programId": 2**63})]
)
def test_ids_are_signed_64_bit_integers(envelope, data):
    doc = earned(**envelope)
    doc["data"].update(data)
    with pytest.raises(InvalidEvent, match="Expected `int` <= 9223372036854775807"):
        parse_event(encode(doc))
    assert fuzz.check_event(encode(earned(orgId=2**63 - 1, customerId=2**63 - 1)), STATES) == "applied"


def _profile(depth: int) -> bytes:
    nested = "[" * depth + "1" + "]" * depth
    return encode(event("customer.registered", {"source": "INSTORE", "extendedFields": {"k": "<n>"}}), n=nested)


def test_free_form_fields_nested_too_deep_to_be_read_back_are_dead_lettered():
    # Nesting is bounded only by the interpreter's recursion limit, which counts the caller's frames too:
    # 950 levels parsed in the fuzzing loop, and the state holding them could not be decoded by a deeper
    # stack (the projector's: a crash loop; the API's: 500s).
    with pytest.raises(InvalidEvent, match=f"extendedFields: nested more than {MAX_NESTING} levels deep"):
        parse_event(_profile(500))
    with pytest.raises(InvalidEvent, match="extendedFields"):
        parse_event(_profile(MAX_NESTING))  # with the field's own object, one level too many
    assert fuzz.check_event(_profile(MAX_NESTING - 1), STATES) == "applied"


def test_card_custom_fields_numbers_are_stored_as_numbers():
    # parsed as Decimal (the amounts' hook), they were stored as the string "2.5": the state read back, and
    # the API's answer, differed from what was applied
    card = {"cardNumber": "C-1", "seriesId": 1, "statusLabel": "ACTIVE", "customFields": {"ratio": 2.5}}
    parsed = parse_event(json.dumps(event("card.issued", card)).encode())
    assert parsed.data.customFields == {"ratio": 2.5} and type(parsed.data.customFields["ratio"]) is float
    assert fuzz.check_event(json.dumps(event("card.issued", card)).encode(), STATES) == "applied"


@pytest.mark.xfail(strict=True, raises=OverflowError, reason="left open: a sum beyond 64 bits cannot be stored")
def test_a_balance_summed_beyond_64_bits_is_refused_rather_than_a_crash_loop():
    # Each amount is within MAX_ABS, but 9,224 adjustments of -10^12 points take `adjusted` below -2^63:
    # the projector's encode then raises OverflowError at every retry. The fix (not made here): the planner
    # refuses the record that would, and the projector dead-letters it (a change outside issue 22's scope).
    records = [("t:0", n, adjusted("-1000000000000", programId=973)) for n in range(9_224)]
    write = plan_customer(None, {}, DedupWindow(), records)
    encode_customer(write.customer)


# --- what the fuzzing found: stored values ---

VALUE = VALUES[0][0]
NO_CUSTOMER = stored_value(Stored(None, {"t:0": 1}, DedupWindow()))


def _with_state(customer: Customer) -> bytes:
    return stored_value(Stored(customer, {"t:0": 1}, DedupWindow()))


def _profile_state(identifier: dict) -> Customer:
    at = "2026-01-08T10:03:21Z"
    profile = Profile("INSTORE", "", None, None, [identifier], [], {}, at, at, 1)
    return Customer(orgId=1, customerId=2, profiles={"INSTORE|": profile})


@pytest.mark.parametrize(
    "value",
    [
        b"loyalty.points.v1:3=41",  # no newline: was read as a customer never written (then overwritten)
        b"t:0=1\n\x00\x00",  # the dedup window's length cut short
        VALUE[:-3],  # the state cut short
        NO_CUSTOMER + b"\xc1",  # the state not MessagePack
        _with_state(_profile_state({"type": "mobile", "valuX": "1"})),  # an identifier without its value
    ],
)
def test_corrupt_stored_values_raise_corrupt_value(value):
    with pytest.raises(CorruptValue):
        decode_value(value)
    with pytest.raises(CorruptValue):
        customer_of(value)
    assert fuzz.check_value(value, SEEDS[0]) == "corrupt"


@pytest.mark.parametrize(
    "value",
    [
        b"\xff\xfe=1\n\x00\x00\x00\x00",  # watermarks not UTF-8
        b"t:0=x\n\x00\x00\x00\x00",  # an offset not a number
        b"t:0=1\n\x00\x00\x00\x05\x00\x07}\x90\x00",  # a dedup window group's header cut short
        b"t:0=1\n\x00\x00\x00\x0d" + struct.pack(">IH", 490_000, 1) + dedup_key("e")[:7],  # its key cut short
    ],
)
def test_corrupt_watermarks_or_dedup_window_raise_corrupt_value(value):
    with pytest.raises(CorruptValue):
        decode_value(value)
    assert customer_of(value) is None  # the API reads the state alone
    assert fuzz.check_value(value, SEEDS[0]) == "corrupt"


def test_a_balance_key_not_of_its_form_answers_503_rather_than_500():
    # decoded (a check of every key in the decoder would cost a third more), refused where it is parsed
    value = _with_state(Customer(orgId=1, customerId=2, balances={"9<3|POINTS": Balance()}))
    assert fuzz.check_value(value, SEEDS[0]) == "decoded, 503 from the API"


def test_a_customer_never_written_and_an_empty_state_still_decode():
    assert decode_value(b"").customer is None and customer_of(b"") is None
    assert decode_value(stored_value(decode_value(b""))).watermarks == {}
    assert decode_customer(encode_customer(Customer(orgId=1, customerId=2))) == Customer(orgId=1, customerId=2)
