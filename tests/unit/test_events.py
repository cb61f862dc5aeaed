"""parse_event against the contract of EVENTS.md: what is accepted, and why the rest is rejected."""

import pytest

from projections.events import (
    AdjustedData,
    CardData,
    Category,
    EarnedData,
    ExpiredData,
    InvalidEvent,
    MergedData,
    ProfileData,
    PromotedData,
    RedeemedData,
    ReturnedData,
    StatusData,
    TierData,
    UnmergedData,
    event_to_json,
    parse_event,
)
from tests.support import event
from tests.unit.builders import encode

PROFILE = {
    "source": "INSTORE",
    "accountId": "",
    "firstName": "Bubalus",
    "lastName": "bubalis",
    "identifiers": [{"type": "mobile", "value": "1234512345"}, {"type": "email", "value": "tom.sawyer@example.com"}],
    "commChannels": [{"type": "mobile", "value": "1234512345", "primary": True, "verified": False}],
    "extendedFields": {"city": "Mumbai"},
}

VALID = {
    "customer.registered": (PROFILE, ProfileData),
    "customer.updated": ({**PROFILE, "source": "MARTJACK", "accountId": "acc-1"}, ProfileData),
    "points.earned": (
        {
            "programId": 7,
            "points": 120,
            "category": "MAIN",
            "expiresAt": "2026-06-30",
            "currency": "POINTS",
            "purchaseAmount": "12.5",
            "transactionId": "t-1",
        },
        EarnedData,
    ),
    "points.redeemed": ({"programId": 7, "points": "12.5"}, RedeemedData),
    "points.expired": ({"programId": 7, "points": 3, "category": "DELAYED_ACCRUAL"}, ExpiredData),
    "points.promoted": (
        {"programId": 7, "points": 4, "fromCategory": "EXTERNAL_TRIGGER", "expiresAt": "2026-06-30T00:00:00+02:00"},
        PromotedData,
    ),
    "points.returned": ({"programId": 7, "points": 5, "category": "MAIN", "purchaseAmount": 20}, ReturnedData),
    "points.adjusted": ({"programId": 7, "points": "-2.5", "currency": "Stars"}, AdjustedData),
    "tier.changed": (
        {"programId": 7, "slabSerial": 2, "slabName": "Gold", "slabExpiryDate": "2027-01-01T00:00:00Z"},
        TierData,
    ),
    "customer.status.changed": ({"label": "SUSPENDED", "reason": "chargeback"}, StatusData),
    "customer.merged": ({"survivorId": 99}, MergedData),
    "customer.unmerged": ({}, UnmergedData),
    "card.issued": ({"cardNumber": "C-1", "seriesId": 195, "statusLabel": "ACTIVE"}, CardData),
    "card.updated": (
        {
            "cardNumber": "C-1",
            "seriesId": 195,
            "statusLabel": "SUSPENDED",
            "seriesCode": "mtest",
            "type": "DIGITAL",
            "statusReason": "lost",
            "customFields": {"vehicle_type": "Bike"},
            "expiresAt": "2027-12-31",
        },
        CardData,
    ),
}


def parse(doc: dict, **raw_numbers: str):
    return parse_event(encode(doc, **raw_numbers))


def rejected(doc_or_bytes, **raw_numbers: str) -> str:
    raw = doc_or_bytes if isinstance(doc_or_bytes, bytes | None) else encode(doc_or_bytes, **raw_numbers)
    with pytest.raises(InvalidEvent) as info:
        parse_event(raw)
    return str(info.value)


def earned(**data) -> dict:
    return event("points.earned", {"programId": 7, "points": 10, "category": "MAIN", **data})


# --- accepted ---


@pytest.mark.parametrize("event_type", sorted(VALID))
def test_every_contract_event_type_parses(event_type):
    data, model = VALID[event_type]
    doc = event(event_type, data, customer_id=566881933, event_id="e-1")
    parsed = parse(doc)
    assert (parsed.eventId, parsed.eventType, parsed.orgId, parsed.customerId) == ("e-1", event_type, 100737, 566881933)
    assert parsed.occurredAt == "2026-01-08T10:03:21Z"
    assert parsed.customer_key == (100737, 566881933)
    assert type(parsed.data) is model


@pytest.mark.parametrize("event_type", sorted(VALID))
def test_event_to_json_round_trips_through_parse_event(event_type):
    parsed = parse(event(event_type, VALID[event_type][0]))
    assert parse_event(event_to_json(parsed)) == parsed


def test_earned_fields_are_typed_and_amounts_are_thousandths():
    data = parse(event("points.earned", VALID["points.earned"][0])).data
    assert data.points == 120_000
    assert data.purchaseAmount == 12_500
    assert data.category is Category.MAIN
    assert data.expiresAt == "2026-06-30T23:59:59Z"  # a bare date means the end of that day
    assert data.is_points


def test_promoted_expiry_is_normalised_to_utc():
    data = parse(event("points.promoted", VALID["points.promoted"][0])).data
    assert data.expiresAt == "2026-06-29T22:00:00Z"
    assert data.fromCategory is Category.EXTERNAL_TRIGGER


def test_adjusted_points_are_signed_and_currency_kept():
    data = parse(event("points.adjusted", VALID["points.adjusted"][0])).data
    assert data.points == -2_500
    assert data.currency == "Stars" and not data.is_points


def test_occurred_at_with_offset_is_normalised_to_utc():
    doc = event("points.redeemed", {"programId": 7, "points": 1}, occurred_at="2026-01-08T10:03:21.25+05:30")
    assert parse(doc).occurredAt == "2026-01-08T04:33:21.250000Z"


def test_amount_as_json_number_point_one_is_exactly_100_thousandths():
    assert parse(earned(points="<n>"), n="0.1").data.points == 100


def test_amount_as_string_is_exact_thousandths():
    assert parse(earned(points="0.125")).data.points == 125


def test_unknown_data_fields_are_ignored_even_with_an_exponent():
    doc = earned(extra="<n>", nested={"deep": [1, 2]})
    data = parse(doc, n="1e5").data
    assert data.points == 10_000
    assert not hasattr(data, "extra")


def test_unknown_envelope_fields_are_ignored():
    assert parse({**earned(), "traceId": "abc", "weight": "<n>"}, n="2.5E3").data.points == 10_000


def test_instore_account_id_is_ignored():
    doc = event("customer.registered", {"source": "INSTORE", "accountId": "shop-9"})
    assert parse(doc).data.accountId == ""


def test_adjusted_accepts_a_negative_json_number():
    doc = event("points.adjusted", {"programId": 7, "points": "<n>"})
    assert parse(doc, n="-0.001").data.points == -1


# --- rejected: the record itself ---


@pytest.mark.parametrize("raw", [b"{not json", b"", b'{"specVersion": NaN}', b"\xff\xfe"])
def test_not_json_is_rejected(raw):
    assert "not JSON" in rejected(raw)


def test_missing_value_is_rejected():
    assert "empty record value" in rejected(None)


@pytest.mark.parametrize("raw", [b"[1, 2]", b'"text"', b"42", b"null"])
def test_non_object_json_is_rejected(raw):
    assert "not an object" in rejected(raw)


# --- rejected: the envelope ---


@pytest.mark.parametrize("version", [2, "1", True, 0, None])
def test_wrong_spec_version_is_rejected(version):
    assert "specVersion" in rejected({**earned(), "specVersion": version})


def test_spec_version_as_decimal_number_is_rejected():
    assert "specVersion" in rejected({**earned(), "specVersion": "<n>"}, n="1.0")


def test_unknown_event_type_is_rejected():
    assert "unknown eventType 'points.gifted'" in rejected({**earned(), "eventType": "points.gifted"})


@pytest.mark.parametrize("field", ["specVersion", "eventId", "eventType", "orgId", "customerId", "occurredAt", "data"])
def test_missing_envelope_field_is_rejected(field):
    doc = earned()
    del doc[field]
    assert field in rejected(doc)


@pytest.mark.parametrize("event_id", ["", "x" * 129, 12345])
def test_bad_event_id_is_rejected(event_id):
    assert "eventId" in rejected({**earned(), "eventId": event_id})


def test_event_id_of_128_chars_is_accepted():
    assert parse({**earned(), "eventId": "x" * 128}).eventId == "x" * 128


@pytest.mark.parametrize("field", ["orgId", "customerId"])
@pytest.mark.parametrize("value", [0, -1, "100737", True, 1.5])
def test_org_and_customer_ids_must_be_positive_integers(field, value):
    assert field in rejected({**earned(), field: value})


@pytest.mark.parametrize("occurred_at", ["2026-01-08T10:03:21", "2026-01-08", "yesterday", 1767866601])
def test_occurred_at_without_offset_or_not_a_timestamp_is_rejected(occurred_at):
    assert "occurredAt" in rejected({**earned(), "occurredAt": occurred_at})


def test_occurred_at_without_offset_says_so():
    assert "with an offset" in rejected({**earned(), "occurredAt": "2026-01-08T10:03:21"})


def test_data_must_be_an_object():
    assert "data" in rejected({**earned(), "data": [1]})


# --- rejected: the data ---

POINTS_TYPES = ["points.earned", "points.redeemed", "points.expired", "points.promoted", "points.returned"]


def points_event(event_type: str, **data) -> dict:
    base = {"programId": 7, "points": 10}
    if event_type in ("points.earned", "points.expired", "points.returned"):
        base["category"] = "MAIN"
    if event_type == "points.promoted":
        base["fromCategory"] = "DELAYED_ACCRUAL"
    return event(event_type, {**base, **data})


@pytest.mark.parametrize("event_type", POINTS_TYPES)
@pytest.mark.parametrize("points", [0, -5, "-5", "0", "0.000"])
def test_points_must_be_positive(event_type, points):
    message = rejected(points_event(event_type, points=points))
    assert "points" in message and "> 0" in message


@pytest.mark.parametrize("points", [0, "0", "0.0"])
def test_adjusted_with_zero_is_rejected(points):
    assert "non-zero" in rejected(event("points.adjusted", {"programId": 7, "points": points}))


@pytest.mark.parametrize("number", ["1e2", "1E2", "1.0e1", "-1e2"])
def test_amount_with_an_exponent_as_json_number_is_rejected(number):
    message = rejected(points_event("points.earned", points="<n>"), n=number)
    assert "points" in message and "exponent" in message


@pytest.mark.parametrize("text", ["1e2", "1E2", "Infinity", "NaN", "1.", ".5", "+1", " 1", "01", "", "1,5"])
def test_amount_string_that_is_not_a_plain_decimal_is_rejected(text):
    assert "not a plain decimal" in rejected(points_event("points.earned", points=text))


def test_amount_with_more_than_3_fractional_digits_as_number_is_rejected():
    assert "at most 3 fractional digits" in rejected(points_event("points.earned", points="<n>"), n="0.1234")


def test_amount_with_more_than_3_fractional_digits_as_string_is_rejected():
    assert "at most 3 fractional digits" in rejected(points_event("points.earned", points="0.1234"))


def test_purchase_amount_follows_the_amount_rules():
    assert "purchaseAmount" in rejected(points_event("points.earned", purchaseAmount="<n>"), n="1e3")
    assert "purchaseAmount" in rejected(points_event("points.returned", purchaseAmount="-1"))


@pytest.mark.parametrize("value", [True, None, [1], {"v": 1}])
def test_amount_of_another_json_type_is_rejected(value):
    assert "points" in rejected(points_event("points.redeemed", points=value))


def test_amount_out_of_range_is_rejected():
    assert "out of range" in rejected(points_event("points.redeemed", points=10**12 + 1))


def test_promoted_from_main_is_rejected():
    assert "fromCategory" in rejected(points_event("points.promoted", fromCategory="MAIN"))


@pytest.mark.parametrize("category", ["main", "BONUS", None])
def test_unknown_category_is_rejected(category):
    assert "category" in rejected(points_event("points.earned", category=category))


@pytest.mark.parametrize("program", [0, -1, "7"])
def test_program_id_must_be_a_positive_integer(program):
    assert "programId" in rejected(points_event("points.redeemed", programId=program))


def test_empty_currency_is_rejected():
    assert "currency" in rejected(points_event("points.redeemed", currency=""))


@pytest.mark.parametrize("account", [None, ""])
def test_non_instore_source_without_account_id_is_rejected(account):
    data = {"source": "MARTJACK"} if account is None else {"source": "MARTJACK", "accountId": account}
    assert "accountId is required for source MARTJACK" in rejected(event("customer.registered", data))


@pytest.mark.parametrize("source", ["instore", "Martjack", "", "MART-JACK"])
def test_source_must_be_an_upper_case_name(source):
    assert "source" in rejected(event("customer.updated", {"source": source, "accountId": "a"}))


def test_identifier_without_value_is_rejected():
    data = {"source": "INSTORE", "identifiers": [{"type": "mobile"}]}
    assert "identifiers" in rejected(event("customer.registered", data))


@pytest.mark.parametrize("serial", [0, -1, "2"])
def test_slab_serial_must_be_a_positive_integer(serial):
    data = {"programId": 7, "slabSerial": serial, "slabName": "Gold"}
    assert "slabSerial" in rejected(event("tier.changed", data))


@pytest.mark.parametrize("data", [{}, {"label": ""}, {"label": "X" * 65}, {"label": 3}])
def test_a_status_needs_a_label_of_1_to_64_characters(data):
    assert "label" in rejected(event("customer.status.changed", data))


@pytest.mark.parametrize("data", [{}, {"survivorId": 0}, {"survivorId": "7"}, {"survivorId": None}])
def test_a_merge_needs_a_positive_survivor_id(data):
    assert "survivorId" in rejected(event("customer.merged", data))


def test_a_merge_into_itself_is_rejected():
    doc = event("customer.merged", {"survivorId": 1})
    assert rejected({**doc, "customerId": 1}) == "invalid data: survivorId: a customer cannot be merged into itself"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"seriesId": 1, "statusLabel": "ACTIVE"}, "cardNumber"),
        ({"cardNumber": "", "seriesId": 1, "statusLabel": "ACTIVE"}, "cardNumber"),
        ({"cardNumber": "C" * 65, "seriesId": 1, "statusLabel": "ACTIVE"}, "cardNumber"),
        ({"cardNumber": "C1", "statusLabel": "ACTIVE"}, "seriesId"),
        ({"cardNumber": "C1", "seriesId": 0, "statusLabel": "ACTIVE"}, "seriesId"),
        ({"cardNumber": "C1", "seriesId": 1}, "statusLabel"),
        ({"cardNumber": "C1", "seriesId": 1, "statusLabel": ""}, "statusLabel"),
        ({"cardNumber": "C1", "seriesId": 1, "statusLabel": "ACTIVE", "customFields": [1]}, "customFields"),
        ({"cardNumber": "C1", "seriesId": 1, "statusLabel": "ACTIVE", "expiresAt": "soon"}, "expiresAt"),
    ],
)
@pytest.mark.parametrize("event_type", ["card.issued", "card.updated"])
def test_invalid_card_data_is_rejected_naming_the_field(event_type, data, field):
    assert field in rejected(event(event_type, data))


def test_a_card_expiry_date_means_the_end_of_that_day_utc():
    data = {"cardNumber": "C1", "seriesId": 1, "statusLabel": "ACTIVE", "expiresAt": "2027-12-31"}
    assert parse(event("card.issued", data)).data.expiresAt == "2027-12-31T23:59:59Z"


def test_tier_without_slab_name_is_rejected():
    assert "slabName" in rejected(event("tier.changed", {"programId": 7, "slabSerial": 1}))


def test_rejection_message_names_the_data_field():
    message = rejected(points_event("points.redeemed", points=-5))
    assert message.startswith("invalid data: points:")


# --- contract disagreements (EVENTS.md: occurredAt is an RFC 3339 timestamp) ---


@pytest.mark.parametrize(
    "occurred_at",
    [
        "20260108T100321Z",  # ISO 8601 basic format
        "2026-W02-4T10:03:21Z",  # ISO 8601 week date
        "2026-01-08T10Z",  # no minutes or seconds
    ],
)
def test_occurred_at_that_is_not_rfc3339_is_rejected(occurred_at):
    assert "occurredAt" in rejected({**earned(), "occurredAt": occurred_at})


def test_rfc3339_lower_case_t_and_z_are_accepted():
    # RFC 3339 section 5.6: "T" and "Z" may alternatively be lower case
    assert parse({**earned(), "occurredAt": "2026-01-08t10:03:21z"}).occurredAt == "2026-01-08T10:03:21Z"


def test_free_form_profile_numbers_are_stored_as_json_numbers_huge_integers_as_floats():
    doc = event(
        "customer.registered",
        {
            **PROFILE,
            "extendedFields": {"a": "<a>", "b": "<b>", "c": 2**70, "d": 7},
            "commChannels": [{"type": "mobile", "value": "1", "rank": "<b>"}],
        },
    )
    data = parse(doc, a="12.5", b="1e3").data
    assert data.extendedFields == {"a": 12.5, "b": 1000.0, "c": float(2**70), "d": 7}
    assert type(data.extendedFields["d"]) is int and data.commChannels[0]["rank"] == 1000.0
