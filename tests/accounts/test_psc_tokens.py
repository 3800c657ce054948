"""Pro Santé Connect access tokens checked against a local issuer (real HTTPS, real keys):
every way a token can be wrong is refused with its own reason; key rotation, the refresh
rate limit, introspection of opaque tokens and the validation cache."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from joserfc.jwk import ECKey, RSAKey

from accounts.psc_http import PscHttp
from accounts.psc_keys import KeyStore, ProviderMetadata
from accounts.psc_tokens import TokenRefused, TokenValidator, token_digest
from config import load_settings
from config.settings import PscSettings
from tests.fixtures.oidc_provider import OidcProvider, jwks_file
from tests.fixtures.pki import DevPkiBundle

IDNAT = "810001234567"


def validator_for(settings: PscSettings, data_dir: Path | None = None) -> TokenValidator:
    http = PscHttp(settings)
    metadata = ProviderMetadata(settings, http)
    return TokenValidator(settings, KeyStore(settings, http, metadata, data_dir), http)


@pytest.fixture
async def checker(oidc_provider: OidcProvider, dev_pki: DevPkiBundle,
                  tmp_path: Path) -> AsyncIterator[TokenValidator]:
    settings = load_settings(data_dir=tmp_path, env={}, overrides={
        "psc": oidc_provider.settings(dev_pki, introspection_url=oidc_provider.issuer
                                      + "/protocol/openid-connect/token/introspect")})
    validator = validator_for(settings.psc)
    yield validator
    await validator._http.close()


async def refusal(validator: TokenValidator, token: str) -> str:
    with pytest.raises(TokenRefused) as caught:
        await validator.access_token(token)
    return caught.value.reason


async def test_a_good_token_names_its_professional(checker: TokenValidator,
                                                   oidc_provider: OidcProvider) -> None:
    claims = await checker.access_token(oidc_provider.token(IDNAT))
    assert claims.idnat == IDNAT and claims.source == "jwt"
    assert claims.expires_at == pytest.approx(time.time() + 300, abs=5)


async def test_each_wrong_token_has_its_reason(checker: TokenValidator,
                                               oidc_provider: OidcProvider) -> None:
    now = int(time.time())
    other = RSAKey.generate_key(2048)
    cases = {
        "expired": oidc_provider.token(IDNAT, exp=now - 60, iat=now - 400),
        "not yet valid": oidc_provider.token(IDNAT, nbf=now + 120),
        "wrong audience": oidc_provider.token(IDNAT, aud="another-client"),
        "wrong issuer": oidc_provider.token(IDNAT, iss="https://evil.example/realms/x"),
        "bad signature": oidc_provider.token(IDNAT, key=other),
        "JWS algorithm 'none' is not accepted (only RS256, PS256, ES256)":
            oidc_provider.unsigned_token(IDNAT),
        "JWS algorithm 'HS256' is not accepted (only RS256, PS256, ES256)":
            oidc_provider.hs256_with_public_key(IDNAT),
        "signed with an unknown key (kid 'nope')": oidc_provider.token(
            IDNAT, kid="nope", key=oidc_provider.keys[oidc_provider.published[-1]]),
        "claim preferred_username is not an idNatPS": oidc_provider.token("12345"),
        "no idNatPS claim (SubjectNameID, preferred_username)": oidc_provider.token(
            IDNAT, preferred_username=None),
        "missing claim exp": oidc_provider.token(IDNAT, exp=None),
    }
    got = {reason: await refusal(checker, token) for reason, token in cases.items()}
    assert got == {reason: reason for reason in cases}


async def test_a_small_clock_difference_is_tolerated(checker: TokenValidator,
                                                     oidc_provider: OidcProvider) -> None:
    now = int(time.time())
    # leeway 5 s in these settings: expired 2 s ago and valid in 2 s both still pass
    assert (await checker.access_token(oidc_provider.token(IDNAT, exp=now - 2))).idnat
    assert (await checker.access_token(oidc_provider.token(IDNAT, nbf=now + 2))).idnat


async def test_es256_and_ps256_are_accepted_rs_only_keys_match_their_alg(
        checker: TokenValidator, oidc_provider: OidcProvider) -> None:
    assert (await checker.access_token(oidc_provider.token(IDNAT, alg="PS256"))).idnat
    ec = ECKey.generate_key("P-256", parameters={"kid": "ec1"})
    oidc_provider.keys["ec1"] = ec  # type: ignore[assignment]
    oidc_provider.published.append("ec1")
    await _wait_refresh()
    assert (await checker.access_token(oidc_provider.token(IDNAT, alg="ES256",
                                                            kid="ec1"))).idnat
    # an RSA key's kid with ES256 in the header: the key does not fit the algorithm
    rsa_kid = oidc_provider.published[0]
    forged = oidc_provider.token(IDNAT, alg="ES256", kid=rsa_kid, key=ec)
    assert (await refusal(checker, forged)).startswith(("invalid JWT", "bad signature"))


async def _wait_refresh() -> None:
    import asyncio
    await asyncio.sleep(1.05)  # jwks_min_refresh = 1 s in these settings


async def test_key_rotation_is_followed_at_most_once_per_interval(
        checker: TokenValidator, oidc_provider: OidcProvider) -> None:
    await checker.access_token(oidc_provider.token(IDNAT))
    reads = oidc_provider.jwks_requests
    new_kid = oidc_provider.new_key()  # the issuer rotates
    await _wait_refresh()
    assert (await checker.access_token(oidc_provider.token(IDNAT, kid=new_kid))).idnat
    assert oidc_provider.jwks_requests == reads + 1
    # a flood of invented key ids costs at most one more read per interval
    for n in range(20):
        await refusal(checker, oidc_provider.token(
            IDNAT, kid=f"invented{n}", key=oidc_provider.keys[new_kid]))
    assert oidc_provider.jwks_requests <= reads + 2


async def test_keys_from_a_jwks_file(oidc_provider: OidcProvider, dev_pki: DevPkiBundle,
                                     tmp_path: Path) -> None:
    path = jwks_file(oidc_provider, tmp_path / "psc-jwks.json")
    settings = load_settings(data_dir=tmp_path, env={}, overrides={
        "psc": oidc_provider.settings(dev_pki, jwks="psc-jwks.json")})
    validator = validator_for(settings.psc, tmp_path)
    assert (await validator.access_token(oidc_provider.token(IDNAT))).idnat == IDNAT
    kid = oidc_provider.new_key()
    jwks_file(oidc_provider, path)  # the operator installs the new keys
    assert (await validator.access_token(oidc_provider.token(IDNAT, kid=kid))).idnat == IDNAT
    assert oidc_provider.jwks_requests == 0  # never fetched over HTTPS


async def test_opaque_tokens_are_introspected_and_remembered_until_expiry(
        checker: TokenValidator, oidc_provider: OidcProvider) -> None:
    token = oidc_provider.opaque_token(IDNAT, exp=int(time.time()) + 60)
    first = await checker.access_token(token)
    assert first.idnat == IDNAT and first.source == "introspection"
    await checker.access_token(token)
    assert oidc_provider.introspections == 1  # the second answer came from the cache
    assert token_digest(token) in checker._remembered
    assert all(token not in repr(v) for v in checker._remembered.values())
    assert await refusal(checker, "unknown-opaque-token") == "inactive token (introspection)"
    gone = oidc_provider.opaque_token(IDNAT, exp=int(time.time()) - 60)
    assert await refusal(checker, gone) == "inactive token (introspection)"


async def test_a_remembered_validation_ends_with_the_token(
        checker: TokenValidator, oidc_provider: OidcProvider) -> None:
    token = oidc_provider.token(IDNAT, exp=int(time.time()) + 1)
    await checker.access_token(token)
    remembered = checker._remembered[token_digest(token)]
    assert remembered.expires_at <= time.time() + 1
    checker._clock = lambda: time.time() + 10  # type: ignore[method-assign]
    assert await refusal(checker, token) == "expired"


async def test_wrong_client_secret_at_introspection_is_an_outage_not_a_refusal(
        oidc_provider: OidcProvider, dev_pki: DevPkiBundle, tmp_path: Path) -> None:
    from accounts.psc_http import PscUnavailable
    settings = load_settings(data_dir=tmp_path, env={}, overrides={"psc": oidc_provider.settings(
        dev_pki, client_secret="wrong", introspection_url=oidc_provider.issuer
        + "/protocol/openid-connect/token/introspect")})
    validator = validator_for(settings.psc)
    with pytest.raises(PscUnavailable, match="HTTP 401"):
        await validator.access_token(oidc_provider.opaque_token(IDNAT))
