"""The request context API Gateway forwards (``x-amzn-request-context``) with an authorizer's claims,
as the REST API (Cognito user pool authorizer) and the HTTP API (JWT authorizer) write it."""

from __future__ import annotations

import json
import uuid


def rest_context(sub, **extra_claims) -> str:
    """``requestContext`` of a REST API event with a Cognito user pool authorizer."""
    return json.dumps({
        "resourcePath": "/sessions", "httpMethod": "POST", "stage": "prod", "requestId": str(uuid.uuid4()),
        "authorizer": {"claims": {"sub": sub, "token_use": "id", "cognito:username": "someone", **extra_claims}},
    })


def http_api_context(sub) -> str:
    """``requestContext`` of an HTTP API event with a JWT authorizer."""
    return json.dumps({"routeKey": "POST /sessions", "authorizer": {"jwt": {"claims": {"sub": sub}, "scopes": None}}})
