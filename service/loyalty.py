"""The loyalty configuration file (CONFIG.md): orgs, programs, tiers and API clients.

Validated at start; a bad file stops the process with its path and the line
(YAML syntax) or field (content) at fault.
"""

from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from projections.identity import INDEXED_TYPES
from projections.money import to_thousandths

HASH_PREFIXES = ("$2a$", "$2b$", "$2y$", "$argon2id$", "$argon2i$", "$argon2d$")


class ConfigError(ValueError):
    pass


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TierConfig(_Strict):
    serial: int = Field(ge=1)
    name: str = Field(min_length=1)
    description: str = ""
    upgradeBasedOn: Literal["CUMULATIVE_PURCHASES", "CURRENT_POINTS", "LIFETIME_POINTS"] | None = None
    upgradeThreshold: Decimal | None = Field(None, ge=0, decimal_places=3)

    @property
    def threshold(self) -> int:
        """upgradeThreshold in thousandths (projections.money), like every figure it is compared with."""
        return to_thousandths(self.upgradeThreshold or 0)


class ProgramConfig(_Strict):
    programId: int = Field(gt=0)
    title: str = ""
    description: str = ""
    pointsToCurrencyRatio: float = 1.0
    tiers: list[TierConfig] = []

    @field_validator("tiers")
    @classmethod
    def _ordered(cls, tiers: list[TierConfig]) -> list[TierConfig]:
        serials = [t.serial for t in tiers]
        if len(set(serials)) != len(serials):
            raise ValueError("tier serials must be unique")
        return sorted(tiers, key=lambda t: t.serial)


def _is_a_hash(value: str) -> str:
    if not value.startswith(HASH_PREFIXES):
        raise ValueError("must be a bcrypt or argon2 (PHC) hash, never a plain password")
    return value


class RateLimit(_Strict):
    """A token bucket: `burst` requests at once, refilled at `requestsPerSecond`."""

    requestsPerSecond: float = Field(gt=0)
    burst: int = Field(ge=1)


class ClientConfig(_Strict):
    username: str = Field(min_length=1)
    passwordHash: str
    rateLimit: RateLimit | None = None

    @field_validator("passwordHash")
    @classmethod
    def _is_a_hash(cls, value: str) -> str:
        return _is_a_hash(value)


class OAuthClientConfig(_Strict):
    key: str = Field(min_length=1)
    secretHash: str
    tokenTtlSeconds: int = Field(1800, ge=1, le=7 * 24 * 3600)
    rateLimit: RateLimit | None = None

    @field_validator("secretHash")
    @classmethod
    def _is_a_hash(cls, value: str) -> str:
        return _is_a_hash(value)


@dataclass(frozen=True)
class Client:
    """Who calls: a Basic username or an OAuth key, its org, and the rate limit that applies to it (its own,
    else its org's default; None: unlimited)."""

    kind: Literal["basic", "oauth"]
    name: str
    org: "OrgConfig" = field(repr=False)
    secret_hash: str = field(repr=False)
    rate_limit: RateLimit | None
    token_ttl_seconds: int = 0
    id: str = field(init=False)  # `kind:name`, unique in the config (usernames, keys: unique in their kind)

    def __post_init__(self) -> None:
        object.__setattr__(self, "id", f"{self.kind}:{self.name}")


class OrgConfig(_Strict):
    orgId: int = Field(gt=0)
    name: str = ""
    dualEligibility: bool = False
    primaryIdentifier: str = "mobile"
    defaultProgramId: int
    programs: list[ProgramConfig] = Field(min_length=1)
    clients: list[ClientConfig] = []
    oauthClients: list[OAuthClientConfig] = []
    rateLimit: RateLimit | None = None  # the default of each of its clients (each has a bucket of its own)

    @field_validator("primaryIdentifier")
    @classmethod
    def _known_type(cls, value: str) -> str:
        canonical = INDEXED_TYPES.get(value.lower())
        if canonical is None:
            raise ValueError(f"must be one of {', '.join(INDEXED_TYPES.values())}")
        return canonical

    @model_validator(mode="after")
    def _default_program_configured(self) -> "OrgConfig":
        ids = [p.programId for p in self.programs]
        if len(set(ids)) != len(ids):
            raise ValueError("programIds must be unique within the org")
        if self.defaultProgramId not in ids:
            raise ValueError(f"defaultProgramId {self.defaultProgramId} is not among the org's programs")
        return self

    def program(self, program_id: int) -> ProgramConfig | None:
        return next((p for p in self.programs if p.programId == program_id), None)


class LoyaltyConfig(_Strict):
    orgs: list[OrgConfig]

    @model_validator(mode="after")
    def _unique(self) -> "LoyaltyConfig":
        org_ids = [o.orgId for o in self.orgs]
        if len(set(org_ids)) != len(org_ids):
            raise ValueError("orgIds must be unique")
        usernames = [c.username for o in self.orgs for c in o.clients]
        duplicated = {u for u in usernames if usernames.count(u) > 1}
        if duplicated:
            raise ValueError(f"a username belongs to exactly one org: {', '.join(sorted(duplicated))}")
        keys = [c.key for o in self.orgs for c in o.oauthClients]
        duplicated = {k for k in keys if keys.count(k) > 1}
        if duplicated:
            raise ValueError(f"an OAuth key belongs to exactly one org: {', '.join(sorted(duplicated))}")
        return self

    @cached_property
    def _clients(self) -> dict[tuple[str, str], Client]:
        clients = {}
        for org in self.orgs:
            for basic in org.clients:
                limit = basic.rateLimit or org.rateLimit
                clients["basic", basic.username] = Client("basic", basic.username, org, basic.passwordHash, limit)
            for oauth in org.oauthClients:
                limit = oauth.rateLimit or org.rateLimit
                clients["oauth", oauth.key] = Client(
                    "oauth", oauth.key, org, oauth.secretHash, limit, oauth.tokenTtlSeconds
                )
        return clients

    def client(self, kind: Literal["basic", "oauth"], name: str) -> Client | None:
        return self._clients.get((kind, name))

    @property
    def has_oauth_clients(self) -> bool:
        return any(org.oauthClients for org in self.orgs)


def load_loyalty_config(path: str | Path) -> LoyaltyConfig:
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the loyalty configuration ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}:{where} invalid YAML: {getattr(exc, 'problem', exc)}") from None
    try:
        return LoyaltyConfig.model_validate(document)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        field = ".".join(str(p) for p in err["loc"]) or "(top level)"
        raise ConfigError(f"{path}: field {field}: {err['msg']}") from None
