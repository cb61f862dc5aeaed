"""Per-customer read-model state: plain data, (de)serialised to compact JSON.

Amounts are integer thousandths. Figures that follow from others (mainPoints,
promisedPoints, ...) are not stored; `figures.py` derives them.
"""

from dataclasses import MISSING, dataclass, field, fields
from typing import Any

NEVER = ""  # expiry-bucket key of points that never expire; sorts after no date


@dataclass(slots=True)
class Balance:
    """One (program, currency) balance. Keys of `buckets`: UTC expiry instants."""

    lifetime: int = 0
    redeemed: int = 0
    expired: int = 0
    returned: int = 0
    adjusted: int = 0
    delayedAccrual: int = 0
    externalTrigger: int = 0
    delayedExpired: int = 0
    delayedReturned: int = 0
    delayedLifetime: int = 0  # promised points ever earned (alternate currencies' delayedLifetimeEarned)
    purchases: int = 0
    buckets: dict[str, int] = field(default_factory=dict)
    expiredByDay: dict[str, int] = field(default_factory=dict)

    @property
    def main(self) -> int:
        return self.lifetime - self.redeemed - self.expired - self.returned + self.adjusted


@dataclass(slots=True)
class Tier:
    serial: int
    name: str
    description: str | None = None
    expiryDate: str | None = None


@dataclass(slots=True)
class Profile:
    source: str
    accountId: str
    firstName: str | None
    lastName: str | None
    identifiers: list[dict[str, str]]
    commChannels: list[dict[str, Any]]
    extendedFields: dict[str, Any]
    createdAt: str
    modifiedAt: str
    seq: int  # the customer's profile-event count at this profile's last change: orders profiles


@dataclass(slots=True)
class Customer:
    orgId: int
    customerId: int
    seq: int = 0  # profile events applied (all on one topic, so the order is the log's)
    profiles: dict[str, Profile] = field(default_factory=dict)  # "SOURCE|accountId"
    balances: dict[str, Balance] = field(default_factory=dict)  # "programId|currency"
    tiers: dict[str, Tier] = field(default_factory=dict)  # "programId"


def profile_key(source: str, account_id: str) -> str:
    return f"{source}|{account_id}"


def balance_key(program_id: int, currency: str) -> str:
    return f"{program_id}|{currency}"


def split_balance_key(key: str) -> tuple[int, str]:
    program, currency = key.split("|", 1)
    return int(program), currency


# --- serialisation: optional fields at their default are left out to keep Redis small ---

def _compact(obj: Any) -> dict[str, Any]:
    return {
        f.name: value
        for f in fields(obj)
        if (value := getattr(obj, f.name)) or (f.default is MISSING and f.default_factory is MISSING)
    }


def customer_to_dict(c: Customer) -> dict[str, Any]:
    return {
        "o": c.orgId,
        "c": c.customerId,
        "n": c.seq,
        "p": {k: _compact(p) for k, p in c.profiles.items()},
        "b": {k: _compact(b) for k, b in c.balances.items()},
        "t": {k: _compact(t) for k, t in c.tiers.items()},
    }


def customer_from_dict(d: dict[str, Any]) -> Customer:
    return Customer(
        orgId=d["o"],
        customerId=d["c"],
        seq=d["n"],
        profiles={k: Profile(**p) for k, p in d["p"].items()},
        balances={k: Balance(**b) for k, b in d["b"].items()},
        tiers={k: Tier(**t) for k, t in d["t"].items()},
    )
