"""OAuth access tokens: issued for a key and secret, verified by signature, expiry and claims; the
Authenticator accepts them in place of Basic and remembers a verified one until its exp."""

import base64
import json
import time

import bcrypt
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pydantic import ValidationError

from runtime.settings import Settings
from service.auth import Authenticator
from service.errors import ApiError
from service.loyalty import ConfigError, LoyaltyConfig
from service.tokens import InvalidToken, TokenKeys, token_keys

SECRET = "s" * 64  # long enough for HS512 too (a test signs with it)
OTHER_SECRET = "o" * 64


def _config(with_oauth: bool = True) -> LoyaltyConfig:
    secret_hash = bcrypt.hashpw(b"key-secret", bcrypt.gensalt(rounds=4)).decode()

    def org(org_id: int, key: str) -> dict:
        return {
            "orgId": org_id,
            "defaultProgramId": 9,
            "programs": [{"programId": 9}],
            "oauthClients": [{"key": key, "secretHash": secret_hash, "tokenTtlSeconds": 60}] if with_oauth else [],
        }

    return LoyaltyConfig.model_validate({"orgs": [org(1, "key.one"), org(2, "key.two")]})


def _hs256(secret: str = SECRET) -> TokenKeys:
    return token_keys(Settings(jwt_secret=secret), _config())


def _rsa_pem(tmp_path, key=None, name="key.pem"):
    key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path / name
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return path


def _forged(claims: dict, header: dict) -> str:
    def part(doc: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()

    return f"{part(header)}.{part(claims)}."


def _claims(**changes) -> dict:
    now = int(time.time())
    return {"org_id": 1, "client_id": "key.one", "iat": now, "exp": now + 60, "jti": "j", **changes}


def test_hs256_tokens_carry_the_claims_and_verify():
    keys = _hs256()
    token = keys.issue(1, "key.one", 60)
    claims = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert set(claims) == {"org_id", "client_id", "iat", "exp", "jti"}
    assert claims["org_id"] == 1 and claims["client_id"] == "key.one" and claims["exp"] - claims["iat"] == 60
    assert keys.verify(token).org_id == 1
    assert keys.issue(1, "key.one", 60) != token  # a jti of its own


def test_rs256_tokens_verify_with_the_derived_public_key(tmp_path):
    keys = token_keys(Settings(jwt_private_key_file=str(_rsa_pem(tmp_path))), _config())
    token = keys.issue(2, "key.two", 60)
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    assert keys.verify(token).client_id == "key.two"
    other = token_keys(Settings(jwt_private_key_file=str(_rsa_pem(tmp_path, name="other.pem"))), _config())
    with pytest.raises(InvalidToken):
        other.verify(token)  # signed by another key


@pytest.mark.parametrize(
    "token",
    [
        jwt.encode(_claims(exp=int(time.time()) - 3), SECRET, algorithm="HS256"),  # expired beyond the leeway
        jwt.encode(_claims(), OTHER_SECRET, algorithm="HS256"),  # wrongly signed
        jwt.encode(_claims(), SECRET, algorithm="HS512"),  # another algorithm, the right secret
        _forged(_claims(), {"alg": "none", "typ": "JWT"}),
        jwt.encode({k: v for k, v in _claims().items() if k != "jti"}, SECRET, algorithm="HS256"),
        jwt.encode(_claims(org_id="1"), SECRET, algorithm="HS256"),
        jwt.encode(_claims(org_id=True), SECRET, algorithm="HS256"),
        jwt.encode(_claims(client_id=7), SECRET, algorithm="HS256"),
        "not.a.token",
        "",
    ],
)
def test_bad_tokens_are_refused(token):
    with pytest.raises(InvalidToken):
        _hs256().verify(token)


def test_a_tampered_token_is_refused():
    header, payload, signature = _hs256().issue(1, "key.one", 60).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    tampered = _forged({**claims, "org_id": 2}, {"alg": "HS256", "typ": "JWT"}).rsplit(".", 2)[1]
    with pytest.raises(InvalidToken):
        _hs256().verify(f"{header}.{tampered}.{signature}")


def test_a_token_is_good_within_one_second_of_its_exp():
    assert _hs256().verify(jwt.encode(_claims(exp=int(time.time())), SECRET, algorithm="HS256")).org_id == 1


def test_oauth_clients_without_a_signing_key_refuse_to_start():
    with pytest.raises(ConfigError, match="POINTSVIEW_JWT_SECRET"):
        token_keys(Settings(), _config())
    assert token_keys(Settings(), _config(with_oauth=False)) is None


def test_unusable_key_files_and_short_secrets_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        token_keys(Settings(jwt_private_key_file=str(tmp_path / "missing.pem")), _config())
    (tmp_path / "junk.pem").write_text("junk")
    with pytest.raises(ConfigError, match="PEM"):
        token_keys(Settings(jwt_private_key_file=str(tmp_path / "junk.pem")), _config())
    ec_pem = _rsa_pem(tmp_path, ec.generate_private_key(ec.SECP256R1()), "ec.pem")
    with pytest.raises(ConfigError, match="RSA"):
        token_keys(Settings(jwt_private_key_file=str(ec_pem)), _config())
    with pytest.raises(ValidationError, match="32 bytes"):
        Settings(jwt_secret="short")
    assert Settings(jwt_secret="").jwt_secret is None


def test_an_oauth_key_belongs_to_one_org():
    doc = _config().model_dump()
    doc["orgs"][1]["oauthClients"][0]["key"] = "key.one"
    with pytest.raises(ValidationError, match="exactly one org: key.one"):
        LoyaltyConfig.model_validate(doc)


# --- the Authenticator ---


def _authenticator(**options) -> Authenticator:
    return Authenticator(_config(), tokens=_hs256(), **options)


async def test_a_token_from_key_and_secret_scopes_the_caller_to_the_keys_org():
    authenticator = _authenticator()
    token, expires_in = await authenticator.token("key.two", "key-secret")
    assert expires_in == 60
    assert (await authenticator.org(f"Bearer {token}")).orgId == 2
    assert (await authenticator.org(f"bearer  {token} ")).orgId == 2


@pytest.mark.parametrize("key, secret", [("key.one", "wrong"), ("key.one", ""), ("", "key-secret"), ("nobody", "x")])
async def test_wrong_empty_or_unknown_keys_and_secrets_get_no_token(key, secret):
    with pytest.raises(ApiError) as raised:
        await _authenticator().token(key, secret)
    assert raised.value.code == 401


async def test_a_flood_of_wrong_secrets_is_throttled_per_key_and_address(counted):
    authenticator = _authenticator(failures_before_cooldown=3)
    for i in range(20):
        with pytest.raises(ApiError):
            await authenticator.token("key.one", f"guess{i}", "10.0.0.66")
    assert len(counted) == 3
    with pytest.raises(ApiError):
        await authenticator.token("key.one", "key-secret", "10.0.0.66")  # throttled: still 401, no hashing
    assert len(counted) == 3
    assert (await authenticator.token("key.one", "key-secret", "10.0.0.7"))[1] == 60


async def test_a_verified_token_is_remembered_until_its_exp(monkeypatch, counted):
    authenticator = _authenticator()
    token, _ = await authenticator.token("key.one", "key-secret")
    assert (await authenticator.org(f"Bearer {token}")).orgId == 1
    monkeypatch.setattr(authenticator.tokens, "verify", lambda _token: pytest.fail("verified again"))
    for _ in range(5):
        assert (await authenticator.org(f"Bearer {token}")).orgId == 1
    await authenticator.token("key.one", "key-secret")
    assert counted == ["key-secret"]  # a second token for the same key and secret: no hashing


async def test_an_expired_remembered_token_is_refused():
    authenticator = _authenticator()
    token = jwt.encode(_claims(exp=int(time.time()) + 1), SECRET, algorithm="HS256")
    assert (await authenticator.org(f"Bearer {token}")).orgId == 1
    authenticator._accepted[f"Bearer {token}"] = (authenticator._accepted[f"Bearer {token}"][0], 0.0)  # its exp
    authenticator.tokens = _hs256(OTHER_SECRET)  # verified again: now refused
    with pytest.raises(ApiError):
        await authenticator.org(f"Bearer {token}")


@pytest.mark.parametrize(
    "claims",
    [_claims(org_id=2), _claims(client_id="removed.key")],  # a key of another org; a key no longer configured
)
async def test_a_token_for_a_client_the_config_does_not_have_there_is_refused(claims):
    with pytest.raises(ApiError) as raised:
        await _authenticator().org("Bearer " + jwt.encode(claims, SECRET, algorithm="HS256"))
    assert raised.value.code == 401


async def test_bearer_without_signing_keys_or_token_is_refused():
    token = jwt.encode(_claims(), SECRET, algorithm="HS256")
    for authenticator, header in ((Authenticator(_config()), f"Bearer {token}"), (_authenticator(), "Bearer ")):
        with pytest.raises(ApiError):
            await authenticator.org(header)
