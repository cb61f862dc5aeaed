"""embed=customerStatus (API.md "Round 2"): the status the customer.status.changed events set, ACTIVE without one."""

from tests.e2e.helpers import new_customer_id, new_mobile, profile
from tests.support import event

DETAILS = "/v2/customers/lookup/customerDetails"
LATER = "2026-03-01T09:00:00+01:00"


async def test_customer_status_section_follows_the_latest_status_event(api):
    customer, mobile = new_customer_id(), new_mobile()
    await api.publish(profile(api.org_a, customer, {"mobile": mobile}))
    lookup = {"source": "INSTORE", "identifierName": "mobile", "identifierValue": mobile}

    async def status(embed: str = "customerStatus") -> dict:
        response = await api.get(DETAILS, embed=embed, **lookup)
        assert response.status_code == 200 and response.json()["warnings"] == [], response.text
        return response.json().get("customerStatus")

    assert await status() == {"label": "ACTIVE", "reason": "", "lastUpdated": None}
    assert await status("cardLoyaltyDetails") is None  # accepted, no section, no warning
    changed = {"customer_id": customer, "org_id": api.org_a}
    await api.publish(
        event("customer.status.changed", {"label": "SUSPENDED", "reason": "chargeback"}, **changed),
        event(
            "customer.status.changed", {"label": "FRAUD_SUSPECTED"}, occurred_at="2026-03-01T09:00:00+01:00", **changed
        ),
    )
    assert await status() == {"label": "FRAUD_SUSPECTED", "reason": "", "lastUpdated": "2026-03-01T08:00:00Z"}
