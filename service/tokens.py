"""OAuth access tokens (API.md "OAuth tokens"): JWTs the service signs for an OAuth client and verifies on
every /v2 read that carries one.

HS256 with POINTSVIEW_JWT_SECRET, or RS256 with the PEM private key in POINTSVIEW_JWT_PRIVATE_KEY_FILE (its
public key verifies). Only that one algorithm is accepted: `alg: none`, another algorithm or another key is
refused like a tampered or expired token.
"""

import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from runtime.settings import Settings
from service.loyalty import ConfigError, LoyaltyConfig

LEEWAY_SECONDS = 1  # a token is accepted until 1 s after its exp (clock skew between replicas)
CLAIMS = ("org_id", "client_id", "iat", "exp", "jti")


class InvalidToken(Exception):
    pass


@dataclass(frozen=True)
class Claims:
    org_id: int
    client_id: str
    expires_at: float  # exp, seconds since the epoch


class TokenKeys:
    def __init__(self, algorithm: str, signing_key, verifying_key):
        self.algorithm = algorithm
        self._signing_key = signing_key
        self._verifying_key = verifying_key

    def issue(self, org_id: int, client_id: str, ttl_seconds: int) -> str:
        now = int(time.time())
        claims = {
            "org_id": org_id,
            "client_id": client_id,
            "iat": now,
            "exp": now + ttl_seconds,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self._signing_key, algorithm=self.algorithm)

    def verify(self, token: str) -> Claims:
        try:
            claims = jwt.decode(
                token,
                self._verifying_key,
                algorithms=[self.algorithm],
                leeway=LEEWAY_SECONDS,
                options={"require": list(CLAIMS)},
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc)) from None
        org_id, client_id = claims["org_id"], claims["client_id"]
        if type(org_id) is not int or not isinstance(client_id, str):
            raise InvalidToken("org_id must be an integer and client_id a string")
        return Claims(org_id, client_id, float(claims["exp"]))


def token_keys(settings: Settings, config: LoyaltyConfig) -> TokenKeys | None:
    """The keys of the settings (None without any); ConfigError when they are unusable, or missing while an
    org lists oauthClients."""
    if settings.jwt_private_key_file:
        return TokenKeys("RS256", *_rsa_keys(Path(settings.jwt_private_key_file)))
    if settings.jwt_secret is not None:
        secret = settings.jwt_secret.get_secret_value()
        return TokenKeys("HS256", secret, secret)
    if config.has_oauth_clients:
        raise ConfigError(
            "an org lists oauthClients but no token signing key is set: "
            "set POINTSVIEW_JWT_SECRET (HS256, 32 bytes or more) or POINTSVIEW_JWT_PRIVATE_KEY_FILE (RS256, PEM)"
        )
    return None


def _rsa_keys(path: Path) -> tuple[RSAPrivateKey, object]:
    try:
        key = load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise ConfigError(f"POINTSVIEW_JWT_PRIVATE_KEY_FILE {path}: cannot read it ({exc.strerror})") from None
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"POINTSVIEW_JWT_PRIVATE_KEY_FILE {path}: not an unencrypted PEM private key ({exc})"
        ) from None
    if not isinstance(key, RSAPrivateKey) or key.key_size < 2048:
        raise ConfigError(f"POINTSVIEW_JWT_PRIVATE_KEY_FILE {path}: RS256 needs an RSA key of 2048 bits or more")
    return key, key.public_key()
