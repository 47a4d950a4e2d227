"""Credentials as deployed: the Anthropic key and the database from Secrets Manager (Powertools
Parameters, cached), or the database through RDS IAM auth tokens. AWS APIs are a moto server; Postgres is
the real local one (trust auth, so it accepts the token or secret password it is given)."""

from __future__ import annotations

import json
import os
import socket
import uuid

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from chatcore import config, db


@pytest.fixture(scope="module")
def moto_endpoint(stack):
    """A moto server for Secrets Manager. Not ``mock_aws``: leaving it resets every moto backend in
    this process, the stack's S3 server included (its bucket would vanish for later tests)."""
    from moto.server import ThreadedMotoServer

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture()
def aws(moto_endpoint, monkeypatch):
    """Secrets Manager on moto; Powertools' providers and caches reset around the test, settings re-read."""
    from aws_lambda_powertools.utilities import parameters
    from aws_lambda_powertools.utilities.parameters.constants import DEFAULT_PROVIDERS

    def reset():
        parameters.clear_caches()
        DEFAULT_PROVIDERS.clear()  # their boto3 clients point at wherever the last test said
        db._rds = None
        config.get_settings.cache_clear()

    reset()
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", moto_endpoint)
    import boto3

    yield boto3.client("secretsmanager", region_name="us-east-1", endpoint_url=moto_endpoint)
    monkeypatch.undo()
    reset()


@pytest.fixture()
def pg(stack) -> dict:
    return conninfo_to_dict(stack.env["DATABASE_URL"])


def test_anthropic_key_from_a_secret_is_cached(aws, monkeypatch):
    arn = aws.create_secret(Name=f"anthropic-{uuid.uuid4().hex[:8]}", SecretString="sk-ant-from-secrets-manager")["ARN"]
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.setenv("ANTHROPIC_API_KEY_SECRET_ARN", arn)
    config.get_settings.cache_clear()
    assert config.anthropic_api_key() == "sk-ant-from-secrets-manager"
    aws.put_secret_value(SecretId=arn, SecretString="sk-ant-rotated")
    assert config.anthropic_api_key() == "sk-ant-from-secrets-manager"  # cached for SECRET_MAX_AGE_SECONDS
    from aws_lambda_powertools.utilities import parameters

    parameters.clear_caches()
    assert config.anthropic_api_key() == "sk-ant-rotated"


def test_anthropic_key_secret_may_be_json_and_env_wins(aws, monkeypatch):
    arn = aws.create_secret(Name=f"anthropic-json-{uuid.uuid4().hex[:8]}",
                            SecretString=json.dumps({"ANTHROPIC_API_KEY": "sk-ant-json"}))["ARN"]
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.setenv("ANTHROPIC_API_KEY_SECRET_ARN", arn)
    config.get_settings.cache_clear()
    assert config.anthropic_api_key() == "sk-ant-json"
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-env")
    config.get_settings.cache_clear()
    assert config.anthropic_api_key() == "sk-ant-env"


def test_database_from_an_rds_secret(aws, pg, monkeypatch):
    secret = {"engine": "postgres", "host": pg["host"], "port": int(pg["port"]), "username": pg["user"],
              "password": "from-the-secret", "dbname": pg["dbname"]}
    arn = aws.create_secret(Name=f"rds-db-credentials/chat-{uuid.uuid4().hex[:8]}",
                            SecretString=json.dumps(secret))["ARN"]
    monkeypatch.delenv("DATABASE_URL")
    monkeypatch.setenv("DB_SECRET_ARN", arn)
    monkeypatch.setenv("DB_SSLMODE", "disable")  # the local server has no TLS; AWS default is verify-full
    config.get_settings.cache_clear()
    conninfo, kwargs = db.connect_params()
    assert conninfo == "" and callable(kwargs)
    params = kwargs()
    assert (params["host"], params["user"], params["password"], params["dbname"]) == \
        (pg["host"], pg["user"], "from-the-secret", pg["dbname"])
    assert params["connect_timeout"] == 10 and params["prepare_threshold"] is None
    with db.connect() as conn:
        assert conn.execute("SELECT current_database() AS name").fetchone()["name"] == pg["dbname"]


def test_db_host_overrides_the_secret_host(aws, pg, monkeypatch):
    """An RDS Proxy endpoint in DB_HOST is used with the secret's username and password."""
    secret = {"host": "db-instance.example.internal", "port": 6543, "username": pg["user"], "password": "pw",
              "dbname": "ignored"}
    arn = aws.create_secret(Name=f"rds-proxy-creds-{uuid.uuid4().hex[:8]}", SecretString=json.dumps(secret))["ARN"]
    monkeypatch.delenv("DATABASE_URL")
    for k, v in {"DB_SECRET_ARN": arn, "DB_HOST": pg["host"], "DB_PORT": pg["port"], "DB_NAME": pg["dbname"],
                 "DB_SSLMODE": "disable"}.items():
        monkeypatch.setenv(k, v)
    config.get_settings.cache_clear()
    params = db.connect_params()[1]()
    assert (params["host"], params["port"], params["dbname"]) == (pg["host"], int(pg["port"]), pg["dbname"])
    with db.connect() as conn:
        assert conn.execute("SELECT 1 AS one").fetchone()["one"] == 1


def test_iam_auth_signs_a_fresh_token_per_connection(aws, pg, monkeypatch):
    monkeypatch.delenv("DATABASE_URL")
    for k, v in {"DB_IAM_AUTH": "1", "DB_HOST": pg["host"], "DB_PORT": pg["port"], "DB_USER": pg["user"],
                 "DB_NAME": pg["dbname"], "DB_SSLMODE": "disable"}.items():
        monkeypatch.setenv(k, v)
    config.get_settings.cache_clear()
    conninfo, kwargs = db.connect_params()
    assert conninfo == "" and callable(kwargs)
    first = kwargs()
    token = first["password"]
    assert token.startswith(f"{pg['host']}:{pg['port']}/?Action=connect") and "X-Amz-Signature=" in token
    assert f"DBUser={pg['user']}" in token
    assert first["sslmode"] == "disable"
    # the pool resolves the callable for each new connection, so an expired token is never reused
    db.close_pool()
    try:
        pool = db.pool()
        assert callable(pool.kwargs)
        with db.connection() as conn:
            assert conn.execute("SELECT current_user AS u").fetchone()["u"] == pg["user"]
    finally:
        db.close_pool()


def test_iam_auth_defaults_to_tls_that_verifies_the_server(aws, monkeypatch):
    monkeypatch.delenv("DATABASE_URL")
    for k, v in {"DB_IAM_AUTH": "1", "DB_HOST": "proxy.example.internal", "DB_USER": "chat_app",
                 "DB_NAME": "chat"}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("DB_SSLMODE", raising=False)
    monkeypatch.delenv("DB_SSLROOTCERT", raising=False)
    config.get_settings.cache_clear()
    params = db.connect_params()[1]()
    # the token is a bearer credential: it only goes to a server whose certificate and name check out
    assert params["sslmode"] == "verify-full" and params["port"] == 5432
    assert params["sslrootcert"] == str(db.CA_BUNDLE) and db.CA_BUNDLE.is_file()
    # "require" is left as it is: a root file would make libpq verify the CA anyway
    monkeypatch.setenv("DB_SSLMODE", "require")
    config.get_settings.cache_clear()
    assert "sslrootcert" not in db.connect_params()[1]() and db.connect_params()[1]()["sslmode"] == "require"


def test_database_url_still_wins(stack):
    config.get_settings.cache_clear()
    conninfo, kwargs = db.connect_params()
    assert conninfo == os.environ["DATABASE_URL"] and kwargs is db.CONNECT_KWARGS
    with db.connect() as conn:
        assert isinstance(conn, psycopg.Connection)
