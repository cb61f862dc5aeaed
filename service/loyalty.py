"""The loyalty configuration file (CONFIG.md): orgs, programs, tiers and API clients.

Validated at start; a bad file stops the process with its path and the line
(YAML syntax) or field (content) at fault.
"""

from decimal import Decimal
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


class ClientConfig(_Strict):
    username: str = Field(min_length=1)
    passwordHash: str

    @field_validator("passwordHash")
    @classmethod
    def _is_a_hash(cls, value: str) -> str:
        if not value.startswith(HASH_PREFIXES):
            raise ValueError("must be a bcrypt or argon2 (PHC) hash, never a plain password")
        return value


class OrgConfig(_Strict):
    orgId: int = Field(gt=0)
    name: str = ""
    dualEligibility: bool = False
    primaryIdentifier: str = "mobile"
    defaultProgramId: int
    programs: list[ProgramConfig] = Field(min_length=1)
    clients: list[ClientConfig] = []

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
        return self

    def client_org(self, username: str) -> tuple[OrgConfig, ClientConfig] | None:
        for org in self.orgs:
            for client in org.clients:
                if client.username == username:
                    return org, client
        return None


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
