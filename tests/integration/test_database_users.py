"""Two database users, as in AWS: the migrations run as the schema's owner, and the app connects as a
user that owns nothing (chatcore.migrate.grant_app_user). The app, served as that user in a process
of its own, does everything a phone does; the same user cannot change the schema."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from chatcore import migrate
from tests.support.users import User
from tests.support.serve_process import another_instance
from tests.support import pg

ROOT = migrate.default_dir().parents[1]


@pytest.fixture(scope="module")
def two_users(stack):
    """A database owned by a migration user, migrated by it, and an app user granted its rights."""
    suffix = uuid.uuid4().hex[:8]
    owner, app, name = f"owner_{suffix}", f"app_{suffix}", f"chat_users_{suffix}"
    admin_url = stack.env["DATABASE_URL"]
    with pg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE ROLE "{owner}" LOGIN')
        admin.execute(f'CREATE ROLE "{app}" LOGIN')
        admin.execute(f'CREATE DATABASE "{name}" OWNER "{owner}"')
    params = conninfo_to_dict(admin_url)
    owner_url = make_conninfo(**{**params, "dbname": name, "user": owner})
    app_url = make_conninfo(**{**params, "dbname": name, "user": app})
    # as bin/migrate (and the migration function) run it
    done = subprocess.run([sys.executable, "-m", "chatcore.migrate", "--database-url", owner_url, "apply",
                           "--app-user", app], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "layers/core")])})
    assert done.returncode == 0, done.stderr
    assert f"granted {app} the application's rights" in done.stdout
    yield owner_url, app_url
    with pg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'DROP ROLE IF EXISTS "{app}"')
        admin.execute(f'DROP ROLE IF EXISTS "{owner}"')


@pytest.fixture(scope="module")
def app_url_server(two_users, tmp_path_factory):
    """The API served by a process of its own that connects as the app user."""
    _, app_url = two_users
    log = tmp_path_factory.mktemp("app-user") / "server.log"
    yield from another_instance({**os.environ, "DATABASE_URL": app_url}, log)


def test_the_app_user_serves_every_route(app_url_server, standin):
    user = User(app_url_server)
    sid = user.new_session()
    r, events = user.turn(sid, message="What is 12 * 7?")
    assert r.status_code == 200 and events[-1]["event"] == "TurnCompleted", events[-1]
    run_id = events[-1]["data"]["run_id"]
    assert user.client.get(f"/sessions/{sid}/messages").status_code == 200
    assert user.client.get(f"/sessions/{sid}/turns/{run_id}/events").status_code == 200
    assert user.client.post(f"/sessions/{sid}/turns/{run_id}/cancel").status_code == 409  # finished
    assert user.client.get("/usage").status_code == 200
    assert user.client.post("/uploads", json={"mime_type": "image/jpeg", "size": 1000}).status_code == 201
    assert user.client.patch(f"/sessions/{sid}", json={"title": "renamed"}).status_code == 200
    assert user.client.delete(f"/sessions/{sid}").status_code == 204


@pytest.mark.parametrize("statement", [
    "CREATE TABLE intruder (id int)",
    "DROP TABLE sessions",
    "ALTER TABLE sessions ADD COLUMN intruder int",
    "TRUNCATE chat_events",
    "DELETE FROM schema_migrations",
    "CREATE INDEX intruder ON sessions (title)",
])
def test_the_app_user_cannot_change_the_schema(two_users, statement):
    _, app_url = two_users
    with pg.connect(app_url, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(statement)


def test_a_later_migration_is_granted_too_and_the_grants_are_idempotent(two_users):
    owner_url, app_url = two_users
    with pg.connect(owner_url, autocommit=True) as owner:
        owner.execute("CREATE TABLE later_feature (id bigserial PRIMARY KEY, note text)")
        migrate.grant_app_user(owner, conninfo_to_dict(app_url)["user"])  # again: nothing changes
    with pg.connect(app_url, autocommit=True) as conn:
        conn.execute("INSERT INTO later_feature (note) VALUES ('x')")
        assert conn.execute("SELECT count(*) FROM later_feature").fetchone()[0] == 1


def test_the_migration_user_is_refused_as_the_app_user(two_users):
    owner_url, _ = two_users
    with pg.connect(owner_url, autocommit=True) as owner:
        with pytest.raises(migrate.MigrationError, match="owns no schema"):
            migrate.grant_app_user(owner, conninfo_to_dict(owner_url)["user"])
