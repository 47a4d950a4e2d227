"""A bearer token checked by the function itself against a user pool (``chatcore.web.cognito``), as
the events function does in AWS (its route has no authorizer): the pool's keys fetched over HTTP
from a local stand-in of the pool, and every way a token is refused."""

from __future__ import annotations

import base64
import json

import pytest

from chatcore.errors import IdentityUnavailable, Unauthorized
from chatcore.web import cognito
from chatcore.web.identity import subject_from_headers, unsigned_jwt
from tests.support.gateway import rest_context
from tests.support.user_pool import UserPool


@pytest.fixture()
def pool():
    cognito._keys.cache_clear()
    with UserPool() as pool:
        yield pool
    cognito._keys.cache_clear()


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def sub_of(headers: dict, issuer: str) -> str:
    return subject_from_headers(headers, allow_unsigned_jwt=False, issuer=issuer)


def test_an_id_or_access_token_of_the_pool_names_its_user_and_the_keys_are_fetched_once(pool):
    assert sub_of(bearer(pool.token("alice")), pool.issuer) == "alice"
    assert sub_of(bearer(pool.token("bob", token_use="access", client_id="app")), pool.issuer) == "bob"
    assert pool.fetches == 1  # cached for the process


def tampered(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "mallory"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


@pytest.mark.parametrize("make, why", [
    (lambda p: p.token("alice", expires_in=-60), "has expired"),
    (lambda p: p.token("alice", issuer="https://cognito-idp.af-south-1.amazonaws.com/other"), "not a valid token"),
    (lambda p: p.token("alice", key=p.stranger), "not a valid token"),
    (lambda p: p.token("alice", key=p.stranger, kid="unknown-key"), "not a token of this API's user pool"),
    (lambda p: tampered(p.token("alice")), "not a valid token"),
    (lambda p: p.token("alice", token_use="refresh"), "neither an ID nor an access token"),
    (lambda p: unsigned_jwt({"sub": "alice", "iss": p.issuer, "token_use": "id", "exp": 9999999999}), "not a token"),
    (lambda p: "not-a-jwt", "not a token of this API's user pool"),
])
def test_a_token_that_is_not_a_valid_one_of_the_pool_is_refused(pool, make, why):
    with pytest.raises(Unauthorized, match=why):
        sub_of(bearer(make(pool)), pool.issuer)


def test_a_token_without_a_token_use_or_without_bearer_is_refused(pool):
    import time

    import jwt

    no_use = jwt.encode({"sub": "alice", "iss": pool.issuer, "exp": int(time.time()) + 60}, pool.key,
                        algorithm="RS256", headers={"kid": "pool-key-1"})
    with pytest.raises(Unauthorized, match="not a valid token"):
        sub_of(bearer(no_use), pool.issuer)
    with pytest.raises(Unauthorized, match="Bearer"):
        sub_of({"authorization": f"Basic {pool.token('alice')}"}, pool.issuer)


def test_the_authorizers_claims_come_first_and_the_keys_unreachable_is_a_503(pool):
    unreachable = "http://127.0.0.1:9/pool"  # nothing listens on the discard port
    # behind an authorizer (its claims in the request context), the token is not looked at again
    assert sub_of({"x-amzn-request-context": rest_context("carol"), **bearer("anything")}, unreachable) == "carol"
    with pytest.raises(IdentityUnavailable) as raised:
        sub_of(bearer(pool.token("alice")), unreachable)
    assert raised.value.status == 503 and raised.value.retry_after
