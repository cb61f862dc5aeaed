"""The balance body: the derived figures of apply.py for the chosen programs, read off the Customer."""

from hypothesis import given
from hypothesis import strategies as st

from projections.apply import sum_figures
from projections.money import to_number
from projections.state import Balance, Customer
from service.balance import balance_body

amounts = st.integers(min_value=0, max_value=10**12)
balances = st.builds(
    Balance,
    lifetime=amounts,
    redeemed=amounts,
    expired=amounts,
    returned=amounts,
    adjusted=st.integers(min_value=-(10**12), max_value=10**12),
    delayedAccrual=amounts,
    externalTrigger=amounts,
)
PROGRAMS = (973, 983, 555)


@given(
    held=st.dictionaries(st.sampled_from([f"{p}|{c}" for p in PROGRAMS for c in ("POINTS", "Stars")]), balances),
    chosen=st.lists(st.sampled_from(PROGRAMS), min_size=1, max_size=3, unique=True),
)
def test_the_body_sums_the_derived_figures_of_the_chosen_programs_points(held, chosen):
    customer = Customer(orgId=1, customerId=7, balances=held)
    totals = sum_figures([held[f"{p}|POINTS"] for p in chosen if f"{p}|POINTS" in held])
    assert balance_body(7, customer, chosen) == {
        "entityId": 7,
        "entityType": "CUSTOMER",
        "totalPoints": to_number(totals["totalPoints"]),
        "mainPoints": to_number(totals["mainPoints"]),
        "promisedPoints": to_number(totals["promisedPoints"]),
        "promisedPointsBreakup": {
            "delayedAccrualPoints": to_number(totals["delayedAccrualPoints"]),
            "externalTriggerBasedPoints": to_number(totals["externalTriggerBasedPoints"]),
        },
        "warnings": [],
    }


def test_a_customer_without_activity_in_the_program_has_zeros():
    body = balance_body(7, Customer(orgId=1, customerId=7), [973])
    assert body["totalPoints"] == body["mainPoints"] == body["promisedPoints"] == 0.0
