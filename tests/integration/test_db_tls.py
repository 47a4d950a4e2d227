"""TLS to Postgres as deployed: ``verify-full`` by default, so an IAM token (a bearer credential) only
goes to a server whose certificate chains to a trusted CA and names the host. A Postgres of its own
with TLS on, its certificate signed by a CA this test makes (openssl), stands in for RDS."""

from __future__ import annotations

import subprocess
from pathlib import Path

import psycopg
import pytest

from chatcore import config, db
from local import certs
from local.postgres import LocalPostgres


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def tls_postgres(tmp_path_factory):
    """A throwaway cluster serving TLS with a certificate for ``localhost`` only, and its CA's file."""
    tmp = tmp_path_factory.mktemp("tls")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test database CA",
             "-keyout", "ca.key", "-out", "ca.pem", cwd=tmp)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "server.key",
             "-out", "server.csr", cwd=tmp)
    (tmp / "ext.cnf").write_text("subjectAltName=DNS:localhost\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-days", "2", "-extfile", "ext.cnf", "-out", "server.pem", cwd=tmp)
    pg = LocalPostgres().start()
    try:
        data = pg.root / "data"
        for name in ("server.pem", "server.key"):
            (data / name).write_bytes((tmp / name).read_bytes())
        if pg._as_user:  # the server runs as postgres and wants its key private
            subprocess.run(["chown", "postgres:postgres", str(data / "server.pem"), str(data / "server.key")], check=True)
        (data / "server.key").chmod(0o600)
        with psycopg.connect(pg.admin_url, autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET ssl_cert_file = 'server.pem'")
            conn.execute("ALTER SYSTEM SET ssl_key_file = 'server.key'")
            conn.execute("ALTER SYSTEM SET ssl = on")
            conn.execute("SELECT pg_reload_conf()")
        yield pg, tmp / "ca.pem"
    finally:
        pg.stop()


@pytest.fixture()
def iam_to(stack, monkeypatch):
    """Settings as in AWS with IAM auth (a token signed locally; the test cluster trusts any password)."""
    def configure(pg: LocalPostgres, host: str, **env: str) -> None:
        monkeypatch.delenv("DATABASE_URL", raising=False)
        for name in ("DB_SSLMODE", "DB_SSLROOTCERT"):
            monkeypatch.delenv(name, raising=False)
        for k, v in {"DB_IAM_AUTH": "1", "DB_HOST": host, "DB_PORT": str(pg.port), "DB_USER": "postgres",
                     "DB_NAME": "postgres", "AWS_DEFAULT_REGION": "us-east-1", **env}.items():
            monkeypatch.setenv(k, v)
        config.get_settings.cache_clear()
        db._rds = None

    yield configure
    monkeypatch.undo()
    config.get_settings.cache_clear()
    db._rds = None


def _ssl_in_use(conn: psycopg.Connection) -> bool:
    return conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()["ssl"]


def test_by_default_the_server_s_certificate_and_name_are_verified(tls_postgres, iam_to):
    pg, ca = tls_postgres
    iam_to(pg, "localhost", DB_SSLROOTCERT=str(ca))
    with db.connect() as conn:
        assert _ssl_in_use(conn)
        assert conn.info.get_parameters()["sslmode"] == "verify-full"


def test_a_certificate_for_another_name_is_refused(tls_postgres, iam_to):
    pg, ca = tls_postgres
    iam_to(pg, "127.0.0.1", DB_SSLROOTCERT=str(ca))  # the certificate names localhost only
    with pytest.raises(psycopg.OperationalError, match="does not match host name|server certificate"):
        db.connect()


def test_a_server_no_shipped_ca_signed_is_refused(tls_postgres, iam_to):
    pg, _ = tls_postgres
    iam_to(pg, "localhost")  # the shipped bundle: RDS's CAs and the Amazon roots, not this test's CA
    with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
        db.connect()


def test_a_missing_ca_bundle_fails_clearly_before_any_connection(tls_postgres, iam_to, tmp_path):
    pg, _ = tls_postgres
    iam_to(pg, "localhost", DB_SSLROOTCERT=str(tmp_path / "absent.pem"))
    with pytest.raises(RuntimeError, match="absent.pem does not exist"):
        db.connect_params()


def test_a_local_postgres_without_tls_is_reached_with_sslmode_disable(stack, iam_to):
    """The stack's cluster has no TLS: DB_SSLMODE=disable is the setting for it."""
    pg = LocalPostgres(port=int(psycopg.conninfo.conninfo_to_dict(stack.env["DATABASE_URL"])["port"]))
    iam_to(pg, "127.0.0.1", DB_SSLMODE="disable")
    with db.connect() as conn:
        assert not _ssl_in_use(conn)


def test_the_shipped_bundle_is_what_the_pinned_packages_give_and_covers_rds_and_rds_proxy():
    assert certs.main(["--check"]) == 0, "layers/core/chatcore/certs/postgres-ca.pem is stale: python -m local.certs"
    assert db.CA_BUNDLE == certs.BUNDLE
    shipped = certs.certificates(db.CA_BUNDLE.read_text())
    assert set(certs.certificates(certs.rds_global_bundle())) <= set(shipped)
    assert set(certs.amazon_roots()) <= set(shipped)
    subjects = subprocess.run(["openssl", "crl2pkcs7", "-nocrl", "-certfile", str(db.CA_BUNDLE)],
                              capture_output=True, check=True)
    names = subprocess.run(["openssl", "pkcs7", "-print_certs", "-noout"], input=subjects.stdout,
                           capture_output=True, check=True).stdout.decode()
    # a region's current RDS root (rds-ca-rsa2048-g1), and RDS Proxy's ACM root
    for name in ("Amazon RDS af-south-1 Root CA RSA2048 G1", "Amazon RDS us-east-1 Root CA RSA2048 G1",
                 "Amazon Root CA 1"):
        assert name in names, name
