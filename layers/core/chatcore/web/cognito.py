"""A Cognito user pool's bearer token checked by the function itself, as API Gateway's Cognito
authorizer checks it: the signature (the pool's published keys, RS256), the expiry, the issuer
(``COGNITO_ISSUER``) and that it is an ID or access token. Used where a route has no authorizer: the
events route in AWS, so that a browser's EventSource can resume with a resume token
(``chatcore.web.resume``) while phones keep sending their bearer token.

The keys are fetched once per process (PyJWT's ``PyJWKClient``, cached an hour; a token signed by a
key it does not know yet fetches them again), over the network: the function needs a way out to
``cognito-idp`` (a NAT in a VPC, as for the model's API). PyJWT is loaded at the first check.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from chatcore.errors import IdentityUnavailable, Unauthorized

TOKEN_USES = ("id", "access")
KEYS_TIMEOUT_SECONDS = 5
LEEWAY_SECONDS = 5  # clock skew between Cognito and the function


@lru_cache(maxsize=4)
def _keys(issuer: str) -> Any:
    import jwt

    return jwt.PyJWKClient(f"{issuer.rstrip('/')}/.well-known/jwks.json", cache_keys=True, lifespan=3600,
                           timeout=KEYS_TIMEOUT_SECONDS)


def claims_of(authorization: str, issuer: str) -> dict[str, Any]:
    """The claims of the ``Authorization`` header's bearer token, checked; ``Unauthorized`` for a
    token that is not the pool's, has expired or was tampered with, ``IdentityUnavailable`` when the
    pool's keys cannot be fetched. Blocking (the first call fetches the keys): call it in a thread."""
    import jwt

    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("expected 'Authorization: Bearer <JWT>'")
    try:
        key = _keys(issuer).get_signing_key_from_jwt(token)
    except jwt.PyJWKClientConnectionError as e:
        raise IdentityUnavailable("the user pool's signing keys could not be fetched; try again") from e
    except jwt.PyJWTError as e:
        raise Unauthorized("the bearer token is not a token of this API's user pool") from e
    try:
        claims = jwt.decode(token, key, algorithms=["RS256"], issuer=issuer, leeway=LEEWAY_SECONDS,
                            options={"require": ["exp", "iss", "sub", "token_use"], "verify_aud": False})
    except jwt.ExpiredSignatureError as e:
        raise Unauthorized("the bearer token has expired") from e
    except jwt.PyJWTError as e:
        raise Unauthorized("the bearer token is not a valid token of this API's user pool") from e
    if claims.get("token_use") not in TOKEN_USES:
        raise Unauthorized("the bearer token is neither an ID nor an access token")
    return claims
