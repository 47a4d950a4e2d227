"""Who is calling: claims from API Gateway's request context, unsigned dev JWTs only when allowed,
and the setting that allows them refused inside Lambda. Pure: headers in, ``sub`` or Unauthorized out
(through the served API: tests/integration/test_identity.py)."""

from __future__ import annotations

import base64
import json
import uuid

import jwt as pyjwt
import pytest
from starlette.datastructures import Headers

from chatcore.config import get_settings
from chatcore.errors import Unauthorized
from chatcore.web.identity import subject_from_headers, unsigned_jwt
from tests.support.gateway import http_api_context, rest_context


def subject(headers: dict, allow: bool) -> str:
    return subject_from_headers(Headers(headers=headers), allow_unsigned_jwt=allow)


# --------------------------------------------------------------------------- request context


@pytest.mark.parametrize("allow", [True, False])
def test_sub_from_rest_api_cognito_claims(allow):
    sub = str(uuid.uuid4())
    assert subject({"x-amzn-request-context": rest_context(sub)}, allow) == sub


@pytest.mark.parametrize("allow", [True, False])
def test_sub_from_http_api_jwt_claims(allow):
    assert subject({"x-amzn-request-context": http_api_context("abc-123")}, allow) == "abc-123"


def test_header_names_are_case_insensitive():
    assert subject({"X-Amzn-Request-Context": rest_context("case-1")}, False) == "case-1"
    assert subject({"AUTHORIZATION": f"Bearer {unsigned_jwt({'sub': 'case-2'})}"}, True) == "case-2"


def test_request_context_wins_over_a_bearer_token():
    headers = {"x-amzn-request-context": rest_context("from-gateway"),
               "authorization": f"Bearer {unsigned_jwt({'sub': 'from-token'})}"}
    assert subject(headers, True) == "from-gateway"
    # a context without claims is not rescued by the token
    headers["x-amzn-request-context"] = json.dumps({"authorizer": {}})
    with pytest.raises(Unauthorized):
        subject(headers, True)


@pytest.mark.parametrize("context", [
    pytest.param("{not json", id="not-json"),
    pytest.param("null", id="null"),
    pytest.param("[]", id="empty-list"),
    pytest.param('[{"authorizer": {"claims": {"sub": "x"}}}]', id="list"),
    pytest.param("42", id="number"),
    pytest.param('"sub"', id="string"),
    pytest.param("{}", id="no-authorizer"),
    pytest.param('{"authorizer": null}', id="authorizer-null"),
    pytest.param('{"authorizer": "cognito"}', id="authorizer-string"),
    pytest.param('{"authorizer": ["claims"]}', id="authorizer-list"),
    pytest.param('{"authorizer": {"claims": "sub=x"}}', id="claims-string"),
    pytest.param('{"authorizer": {"jwt": "token"}}', id="jwt-string"),
    pytest.param('{"authorizer": {"jwt": {"claims": ["sub"]}}}', id="jwt-claims-list"),
    pytest.param('{"authorizer": {"claims": {"email": "a@b.c"}}}', id="no-sub"),
    pytest.param('{"authorizer": {"claims": {"sub": ""}}}', id="empty-sub"),
    pytest.param('{"authorizer": {"claims": {"sub": "   "}}}', id="blank-sub"),
    pytest.param('{"authorizer": {"claims": {"sub": 123}}}', id="number-sub"),
    pytest.param('{"authorizer": {"claims": {"sub": null}}}', id="null-sub"),
    pytest.param('{"authorizer": {"claims": {"sub": "a\\u0000b"}}}', id="nul-in-sub"),
    pytest.param('{"authorizer": {"claims": {"sub": "\\ud800"}}}', id="lone-surrogate-sub"),
    pytest.param('{"authorizer": {"claims": {"sub": "a\\nb"}}}', id="newline-in-sub"),
    pytest.param(json.dumps({"authorizer": {"claims": {"sub": "x" * 256}}}), id="sub-too-long"),
])
def test_bad_request_context_is_unauthorized(context):
    with pytest.raises(Unauthorized) as info:
        subject({"x-amzn-request-context": context}, True)
    problem = info.value.to_problem()
    assert problem["status"] == 401 and problem["code"] == "unauthorized" and problem["detail"]


def test_sub_is_trimmed_and_may_be_255_characters():
    assert subject({"x-amzn-request-context": rest_context("  padded  ")}, False) == "padded"
    long_sub = "s" * 255
    assert subject({"x-amzn-request-context": rest_context(long_sub)}, False) == long_sub
    assert subject({"x-amzn-request-context": rest_context("auth0|5f7c8ec7c33c6c004bbafe82")}, False) == \
        "auth0|5f7c8ec7c33c6c004bbafe82"


# --------------------------------------------------------------------------- unsigned JWT


def test_unsigned_jwt_is_accepted_only_when_allowed():
    token = unsigned_jwt({"sub": "dev-user", "email": "dev@example.com"})
    headers = {"authorization": f"Bearer {token}"}
    assert subject(headers, True) == "dev-user"
    with pytest.raises(Unauthorized):
        subject(headers, False)


def test_a_signed_jwt_is_read_the_same_way_in_dev_mode():
    token = pyjwt.encode({"sub": "signed-user"}, "secret-key-of-at-least-32-bytes!", algorithm="HS256")
    assert subject({"authorization": f"bearer {token}"}, True) == "signed-user"
    with pytest.raises(Unauthorized):
        subject({"authorization": f"Bearer {token}"}, False)


def test_unsigned_jwt_is_a_three_part_alg_none_token():
    header, payload, signature = unsigned_jwt({"sub": "x"}).split(".")
    pad = lambda s: s + "=" * (-len(s) % 4)  # noqa: E731
    assert json.loads(base64.urlsafe_b64decode(pad(header))) == {"alg": "none", "typ": "JWT"}
    assert json.loads(base64.urlsafe_b64decode(pad(payload))) == {"sub": "x"}
    assert signature and "=" not in payload


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.parametrize("authorization", [
    pytest.param("", id="empty"),
    pytest.param("Bearer", id="no-token"),
    pytest.param("Bearer    ", id="blank-token"),
    pytest.param("Basic dXNlcjpwYXNz", id="basic"),
    pytest.param(unsigned_jwt({"sub": "x"}), id="no-scheme"),
    pytest.param("Token " + unsigned_jwt({"sub": "x"}), id="other-scheme"),
    pytest.param("Bearer not-a-jwt", id="not-a-jwt"),
    pytest.param("Bearer a.b", id="two-parts"),
    pytest.param("Bearer a.b.c.d", id="four-parts"),
    pytest.param("Bearer x.!!!.y", id="payload-not-base64"),
    pytest.param(f"Bearer x.{_b64url(b'not json')}.y", id="payload-not-json"),
    pytest.param(f"Bearer x.{_b64url(bytes([0xff, 0xfe]))}.y", id="payload-not-utf8"),
    pytest.param(f"Bearer x.{_b64url(b'[1, 2]')}.y", id="payload-a-list"),
    pytest.param(f"Bearer {unsigned_jwt({'email': 'a@b.c'})}", id="no-sub"),
    pytest.param(f"Bearer {unsigned_jwt({'sub': ''})}", id="empty-sub"),
    pytest.param(f"Bearer {unsigned_jwt({'sub': ['x']})}", id="list-sub"),
    pytest.param(f"Bearer {unsigned_jwt({'sub': 'x' * 256})}", id="long-sub"),
    pytest.param(f"Bearer {unsigned_jwt({'sub': 'a' + chr(0)})}", id="nul-sub"),
])
def test_bad_bearer_is_unauthorized_even_when_allowed(authorization):
    with pytest.raises(Unauthorized):
        subject({"authorization": authorization}, True)


def test_no_identity_at_all_is_unauthorized():
    for allow in (True, False):
        with pytest.raises(Unauthorized):
            subject({}, allow)


# --------------------------------------------------------------------------- settings


def _base_env(env) -> None:
    env.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    env.setenv("MEDIA_BUCKET", "bucket")


def test_allow_unsigned_jwt_is_refused_inside_lambda(settings_env):
    _base_env(settings_env)
    settings_env.setenv("AWS_LAMBDA_FUNCTION_NAME", "chat-function")
    settings_env.setenv("ALLOW_UNSIGNED_JWT", "1")
    with pytest.raises(RuntimeError, match="ALLOW_UNSIGNED_JWT .* refused in Lambda"):
        get_settings()
    settings_env.setenv("ALLOW_UNSIGNED_JWT", "true")
    with pytest.raises(RuntimeError, match="refused in Lambda"):
        get_settings()


def test_lambda_without_unsigned_jwt_starts(settings_env):
    _base_env(settings_env)
    settings_env.setenv("AWS_LAMBDA_FUNCTION_NAME", "chat-function")
    settings_env.delenv("ALLOW_UNSIGNED_JWT", raising=False)
    s = get_settings()
    assert s.running_in_lambda is True and s.allow_unsigned_jwt is False


@pytest.mark.parametrize("value, allowed", [
    ("1", True), ("true", True), ("TRUE", True), ("yes", True),
    ("0", False), ("", False), ("false", False), ("no", False), ("2", False),
])
def test_allow_unsigned_jwt_values_outside_lambda(settings_env, value, allowed):
    _base_env(settings_env)
    settings_env.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    settings_env.setenv("ALLOW_UNSIGNED_JWT", value)
    s = get_settings()
    assert s.allow_unsigned_jwt is allowed and s.running_in_lambda is False
