"""Settings read from the environment: each declared once (type, default, bounds, variable, doc); a
bad value of any of them, or settings that do not go together, are refused when the settings are read
(at cold start) with one message naming the variable and what it accepts; the request schemas apply
the configured limits; the table of docs/operations.md is the declarations'. Pure: the environment
only."""

from __future__ import annotations

import math
import uuid

import pytest
from pydantic import ValidationError

from chatcore import config
from chatcore.config import DECLARED, Settings

NUMERIC = [d for d in DECLARED.values() if d.numeric]


@pytest.fixture()
def env(monkeypatch):
    """An environment holding none of the declared variables but a database and a bucket; the
    environment and the cached settings are restored afterwards."""
    for declared in DECLARED.values():
        for name in declared.env:
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", "postgresql://unused/x")
    monkeypatch.setenv("MEDIA_BUCKET", "bucket")
    config.get_settings.cache_clear()
    yield monkeypatch
    monkeypatch.undo()
    config.get_settings.cache_clear()


def refused(env, **variables) -> str:
    for name, value in variables.items():
        env.setenv(name, value)
    config.get_settings.cache_clear()
    with pytest.raises(RuntimeError) as info:
        config.get_settings()
    return str(info.value)


def read(env, **variables) -> Settings:
    for name, value in variables.items():
        env.setenv(name, value)
    config.get_settings.cache_clear()
    return config.get_settings()


# --------------------------------------------------------------------------- the declarations


def test_every_setting_is_declared_with_a_variable_a_doc_and_a_default_of_its_type():
    variables = [name for d in DECLARED.values() for name in d.env]
    assert len(variables) == len(set(variables))  # no variable read for two settings
    for d in DECLARED.values():
        assert d.env and all(name == name.upper() for name in d.env), d.name
        assert d.doc and "\n" not in d.doc and "|" not in d.doc, d.name  # one line, a table cell
        if d.type is int:
            assert type(d.default) is int, d.name
        elif d.type is float:
            assert type(d.default) is float, d.name
        elif d.type is bool:
            assert d.default is False, d.name
        else:
            assert d.default is None or isinstance(d.default, str), d.name
        if d.choices:
            assert d.default is None or d.default in d.choices, d.name


@pytest.mark.parametrize("d", NUMERIC, ids=lambda d: d.env[0])
def test_every_numeric_setting_has_bounds_around_its_default(d):
    assert d.ge is not None and d.le is not None and d.ge < d.le
    assert math.isfinite(d.ge) and math.isfinite(d.le) and d.ge <= d.default <= d.le


@pytest.mark.parametrize("d", NUMERIC, ids=lambda d: d.env[0])
def test_every_numeric_setting_refuses_what_is_outside_its_bounds_naming_the_variable_and_range(env, d):
    kind = "a whole number" if d.type is int else "a number"
    span = f"from {config._number(d.ge)} to {config._number(d.le)}"
    below, above = d.ge - (1 if d.type is int else 0.001), d.le + (1 if d.type is int else 0.001)
    for value in (below, above, "abc"):
        message = refused(env, **{d.env[0]: str(value)})
        assert message == f"{d.env[0]} must be {kind} {span}, got {str(value)!r}"
    # the bounds themselves are taken (where the other settings allow them)
    for value in (d.ge, d.le):
        others = {"TURN_TIMEOUT": "1"} if d.name == "stale_turn_seconds" else {}
        others |= {"STALE_TURN_SECONDS": "86400"} if d.name == "turn_timeout" else {}
        assert getattr(read(env, **{d.env[0]: str(value)}, **others), d.name) == value


@pytest.mark.parametrize("variable, value, message", [
    ("HEARTBEAT_SECONDS", "abc", "HEARTBEAT_SECONDS must be a number from 0.1 to 240, got 'abc'"),
    ("HEARTBEAT_SECONDS", "0", "HEARTBEAT_SECONDS must be a number from 0.1 to 240, got '0'"),
    ("HEARTBEAT_SECONDS", "nan", "HEARTBEAT_SECONDS must be a number from 0.1 to 240, got 'nan'"),
    ("EVENT_BATCH_SECONDS", "inf", "EVENT_BATCH_SECONDS must be a number from 0.01 to 3600, got 'inf'"),
    ("ACCOUNT_WAIT_SECONDS", "-1", "ACCOUNT_WAIT_SECONDS must be a number from 0 to 25, got '-1'"),
    ("DB_POOL_TIMEOUT", "5s", "DB_POOL_TIMEOUT must be a number from 0.1 to 60, got '5s'"),
    ("MAX_PAGE_SIZE", "0", "MAX_PAGE_SIZE must be a whole number from 50 to 500, got '0'"),
    ("MAX_MESSAGE_CHARS", "1.5", "MAX_MESSAGE_CHARS must be a whole number from 1 to 1000000, got '1.5'"),
    ("MAX_BODY_BYTES", "7MB", "MAX_BODY_BYTES must be a whole number from 65536 to 6291456, got '7MB'"),
    ("TURN_TIMEOUT", "-5", "TURN_TIMEOUT must be a whole number from 1 to 900, got '-5'"),
    ("DB_PORT", "70000", "DB_PORT must be a whole number from 1 to 65535, got '70000'"),
    ("RETENTION_DAYS", "-1", "RETENTION_DAYS must be a whole number from 0 to 36500, got '-1'"),
    ("RETENTION_DAYS", "thirty", "RETENTION_DAYS must be a whole number from 0 to 36500, got 'thirty'"),
    ("PROMPT_CACHE_TTL", "2h", "PROMPT_CACHE_TTL must be one of 5m, 1h, got '2h'"),
    ("DB_SSLMODE", "on", "DB_SSLMODE must be one of disable, allow, prefer, require, verify-ca, verify-full, "
                         "got 'on'"),
])
def test_a_bad_value_is_one_message_naming_the_variable_and_what_it_accepts(env, variable, value, message):
    assert refused(env, **{variable: value}) == message


def test_several_bad_values_are_named_in_one_message(env):
    message = refused(env, HEARTBEAT_SECONDS="abc", MAX_PAGE_SIZE="0")
    assert message == ("MAX_PAGE_SIZE must be a whole number from 50 to 500, got '0'; "
                       "HEARTBEAT_SECONDS must be a number from 0.1 to 240, got 'abc'")


def test_values_are_read_with_their_types_and_an_empty_variable_is_the_default(env):
    s = read(env, HEARTBEAT_SECONDS="2.5", MAX_PAGE_SIZE=" 60 ", MAX_USAGE_DAYS="31", DB_POOL_MAX="3",
             PROMPT_CACHE_TTL="1h", MAX_MESSAGE_CHARS="", DB_SSLMODE="disable", MEDIA_PREFIX="")
    assert (s.heartbeat_seconds, s.max_page_size, s.max_usage_days, s.db_pool_max) == (2.5, 60, 31, 3)
    assert s.prompt_cache_ttl == "1h" and s.db_sslmode == "disable"
    assert s.max_message_chars == DECLARED["max_message_chars"].default and s.media_prefix == "media/"
    assert read(env, RETENTION_DAYS="30").retention_days == 30


def test_the_first_of_two_variables_wins(env):
    s = read(env, AWS_DEFAULT_REGION="eu-west-1", AWS_ENDPOINT_URL="http://all")
    assert (s.aws_region, s.s3_endpoint_url) == ("eu-west-1", "http://all")
    s = read(env, AWS_REGION="af-south-1", AWS_ENDPOINT_URL_S3="http://s3")
    assert (s.aws_region, s.s3_endpoint_url) == ("af-south-1", "http://s3")


def test_a_value_given_in_code_is_checked_against_the_declaration():
    assert config.check("retention_days", 40) == 40
    with pytest.raises(RuntimeError, match=r"^RETENTION_DAYS must be a whole number from 0 to 36500, got '-3'$"):
        config.check("retention_days", -3)


# --------------------------------------------------------------------------- settings that go together


@pytest.mark.parametrize("variables, message", [
    ({}, "DATABASE_URL is not set"),
    ({"DB_IAM_AUTH": "1", "DB_HOST": "h"}, "DB_IAM_AUTH=1 needs DB_USER, DB_NAME"),
])
def test_database_configuration_errors(env, variables, message):
    env.delenv("DATABASE_URL")
    assert message in refused(env, **variables)


def test_a_bucket_is_required(env):
    env.delenv("MEDIA_BUCKET")
    assert refused(env) == "MEDIA_BUCKET is not set"


def test_a_stale_turn_must_be_older_than_the_longest_turn(env):
    assert refused(env, TURN_TIMEOUT="900", STALE_TURN_SECONDS="900") == (
        "STALE_TURN_SECONDS (900) must be more than TURN_TIMEOUT (900): a turn still running would be taken "
        "for abandoned")
    assert read(env, STALE_TURN_SECONDS="901").stale_turn_seconds == 901


# --------------------------------------------------------------------------- one place decides


def test_the_request_schemas_apply_the_configured_limits(env):
    from chatcore.wire.schemas import CreateSession, RenameSession, TurnIn

    read(env, MAX_MESSAGE_CHARS="10", MAX_TITLE_CHARS="3", MAX_IMAGES_PER_TURN="1", MAX_CLIENT_TURN_ID_CHARS="40")
    TurnIn.model_validate({"message": "x" * 10, "client_turn_id": "a" * 40,
                           "images": [{"upload_id": str(uuid.uuid4())}]})
    for model, body, field, message in [
        (TurnIn, {"message": "x" * 11}, "message", "String should have at most 10 characters"),
        (TurnIn, {"client_turn_id": "a" * 41}, "client_turn_id", "String should have at most 40 characters"),
        (TurnIn, {"images": [{"upload_id": str(uuid.uuid4())}] * 2}, "images",
         "List should have at most 1 items after validation, not 2"),
        (CreateSession, {"agent": "assistant", "title": "four"}, "title", "String should have at most 3 characters"),
        (RenameSession, {"title": "four"}, "title", "String should have at most 3 characters"),
    ]:
        with pytest.raises(ValidationError) as info:
            model.model_validate(body)
        assert [(e["loc"], e["msg"]) for e in info.value.errors()] == [((field,), message)]
    # a limit raised above its default is the one applied too
    read(env, MAX_MESSAGE_CHARS="40000")
    assert len(TurnIn.model_validate({"message": "x" * 40_000}).message) == 40_000


def test_the_schemas_document_the_defaults():
    from chatcore.wire.schemas import CreateSession, TurnIn

    turn = TurnIn.model_json_schema()["properties"]
    assert turn["message"]["maxLength"] == DECLARED["max_message_chars"].default
    assert turn["images"]["maxItems"] == DECLARED["max_images_per_turn"].default
    assert turn["client_turn_id"]["anyOf"][0]["maxLength"] == DECLARED["max_client_turn_id_chars"].default
    title = CreateSession.model_json_schema()["properties"]["title"]["anyOf"][0]
    assert (title["minLength"], title["maxLength"]) == (1, DECLARED["max_title_chars"].default)


def test_the_committed_settings_table_is_the_declarations():
    from local import settings_doc

    text = settings_doc.OPERATIONS_PATH.read_text()
    assert text == settings_doc.rendered(text), "run `python -m local.settings_doc` and commit docs/operations.md"
    for d in DECLARED.values():
        assert f"| `{d.env[0]}`" in text and d.doc in text, d.name

