"""Schema migrations against fresh databases on the test Postgres: the library, the CLI, and the
real ``sql/migrations``."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import psycopg
import pytest
from uuid6 import uuid7

from chatcore.store import ledger as migration_ledger
from chatcore.migrate import MigrationError, apply, default_dir, discover, generate, status
from tests.support import databases, pg
from tests.support.migrations import write


# --------------------------------------------------------------------------- fixtures


@pytest.fixture()
def fresh_db(stack):
    """The URL of a new, empty database on the test server, dropped afterwards."""
    url = databases.create(stack, "migrate_test", migrated=False)
    yield url
    databases.drop(stack, url)


@pytest.fixture()
def conn(fresh_db):
    with pg.connect(fresh_db, autocommit=True) as c:
        yield c


def three_files(d: Path) -> None:
    """Each file records itself in ``log``, in the transaction that applies it."""
    write(d, "0001_create_log.sql", """
        CREATE TABLE log (version int PRIMARY KEY, seen int NOT NULL);
        INSERT INTO log VALUES (1, (SELECT count(*) FROM log));
    """)
    write(d, "0002_add_items.sql", """
        CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);
        INSERT INTO items VALUES (1, '100% cotton'), (2, 'it''s');   -- a % and a quote: no placeholders
        INSERT INTO log VALUES (2, (SELECT count(*) FROM log));
    """)
    write(d, "0003_items_price.sql", """
        ALTER TABLE items ADD COLUMN price numeric NOT NULL DEFAULT 0;
        INSERT INTO log VALUES (3, (SELECT count(*) FROM log));
    """)


def ledger(conn) -> list[tuple]:
    return conn.execute("SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY version").fetchall()


def table_exists(conn, name: str) -> bool:
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()[0]


# --------------------------------------------------------------------------- apply


def test_apply_applies_each_file_once_in_order_each_in_its_own_transaction(conn, mig_dir):
    three_files(mig_dir)
    done = apply(conn, mig_dir)
    assert [(m.version, m.name) for m in done] == [(1, "create_log"), (2, "add_items"), (3, "items_price")]
    # in order: each file saw the rows of the files before it
    assert conn.execute("SELECT version, seen FROM log ORDER BY version").fetchall() == [(1, 0), (2, 1), (3, 2)]
    assert conn.execute("SELECT name FROM items ORDER BY id").fetchall() == [("100% cotton",), ("it's",)]
    rows = ledger(conn)
    assert [(v, n) for v, n, _, _ in rows] == [(1, "create_log"), (2, "add_items"), (3, "items_price")]
    assert [c for _, _, c, _ in rows] == [m.checksum for m in discover(mig_dir)]
    # a file and its ledger row were written by one transaction; each file by a different one
    file_xids = dict(conn.execute("SELECT version, xmin::text FROM log").fetchall())
    ledger_xids = dict(conn.execute("SELECT version, xmin::text FROM schema_migrations").fetchall())
    assert file_xids == ledger_xids
    assert len(set(file_xids.values())) == 3
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


def test_second_apply_applies_nothing(conn, mig_dir):
    three_files(mig_dir)
    apply(conn, mig_dir)
    before = ledger(conn)
    assert apply(conn, mig_dir) == []
    assert ledger(conn) == before
    assert conn.execute("SELECT count(*) FROM log").fetchone()[0] == 3


def test_apply_only_applies_new_files(conn, mig_dir):
    three_files(mig_dir)
    (mig_dir / "0003_items_price.sql").rename(mig_dir.parent / "later.sql")
    assert [m.version for m in apply(conn, mig_dir)] == [1, 2]
    (mig_dir.parent / "later.sql").rename(mig_dir / "0003_items_price.sql")
    assert [m.version for m in apply(conn, mig_dir)] == [3]
    assert conn.execute("SELECT version, seen FROM log ORDER BY version").fetchall() == [(1, 0), (2, 1), (3, 2)]


@pytest.mark.parametrize("bad_sql", [
    pytest.param("SELECT 1 / 0;", id="runtime-error"),
    pytest.param("INSERT INTO nope VALUES (1);", id="missing-table"),
    pytest.param("CREATE TABLE items (id int);", id="duplicate-table"),
])
def test_a_failing_file_rolls_back_fully_and_leaves_earlier_ones_applied(conn, mig_dir, bad_sql):
    three_files(mig_dir)
    write(mig_dir, "0002_add_items.sql", f"""
        CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);
        INSERT INTO items VALUES (1, 'half done');
        INSERT INTO log VALUES (2, 0);
        {bad_sql}
    """)
    with pytest.raises(MigrationError, match=r"0002_add_items\.sql failed and was rolled back"):
        apply(conn, mig_dir)
    # 0001 stays applied; nothing of 0002 remains; 0003 was not attempted
    assert [v for v, *_ in ledger(conn)] == [1]
    assert table_exists(conn, "log") and not table_exists(conn, "items")
    assert conn.execute("SELECT version FROM log").fetchall() == [(1,)]
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert [(m.version, s) for m, s in status(conn, mig_dir)] == [(1, "applied"), (2, "pending"), (3, "pending")]
    # an unapplied file may be fixed; the next apply picks up where it stopped
    three_files(mig_dir)
    assert [m.version for m in apply(conn, mig_dir)] == [2, 3]


def test_a_syntax_error_anywhere_in_a_file_applies_none_of_it(conn, mig_dir):
    write(mig_dir, "0001_broken.sql", "CREATE TABLE fine (id int);\nCREATE TABLEE broken (id int);\n")
    with pytest.raises(MigrationError, match="0001_broken.sql"):
        apply(conn, mig_dir)
    assert not table_exists(conn, "fine")
    assert ledger(conn) == []


def test_an_applied_file_that_changed_is_refused(conn, mig_dir):
    three_files(mig_dir)
    apply(conn, mig_dir)
    write(mig_dir, "0004_later.sql", "CREATE TABLE later (id int);")
    path = mig_dir / "0002_add_items.sql"
    path.write_text(path.read_text() + "\n-- an innocent comment\n")
    with pytest.raises(MigrationError) as info:
        apply(conn, mig_dir)
    message = str(info.value)
    assert "0002_add_items.sql" in message and "must not change" in message and "new migration" in message
    # refused before anything ran: the pending 0004 was not applied either
    assert not table_exists(conn, "later")
    assert [v for v, *_ in ledger(conn)] == [1, 2, 3]
    states = {m.version: s for m, s in status(conn, mig_dir)}
    assert states == {1: "applied", 2: "CHANGED", 3: "applied", 4: "pending"}


def test_status_reports_applied_pending_and_changed(conn, mig_dir):
    three_files(mig_dir)
    assert [(m.path.name, s) for m, s in status(conn, mig_dir)] == [
        ("0001_create_log.sql", "pending"), ("0002_add_items.sql", "pending"), ("0003_items_price.sql", "pending")]
    assert not table_exists(conn, "log")  # status changes nothing but the (empty) ledger
    apply(conn, mig_dir)
    write(mig_dir, "0004_more.sql", "SELECT 1;")
    (mig_dir / "0001_create_log.sql").write_text("-- rewritten\n")
    assert [(m.version, s) for m, s in status(conn, mig_dir)] == [
        (1, "CHANGED"), (2, "applied"), (3, "applied"), (4, "pending")]


@pytest.mark.parametrize("name", [
    "1_init.sql", "001_init.sql", "00001_init.sql", "0001-init.sql", "0001_Init.sql", "0001_.sql",
    "0001_init table.sql", "init.sql", "0001init.sql", "abcd_init.sql", "0001_init.sql.sql", "0001_ïnit.sql",
])
def test_bad_file_names_are_refused_before_anything_runs(conn, mig_dir, name):
    write(mig_dir, "0001_fine.sql", "CREATE TABLE fine (id int);")
    write(mig_dir, name, "CREATE TABLE stray (id int);")
    with pytest.raises(MigrationError, match="NNNN_lower_snake.sql"):
        apply(conn, mig_dir)
    assert not table_exists(conn, "fine") and not table_exists(conn, "stray")
    assert not table_exists(conn, "schema_migrations")
    with pytest.raises(MigrationError, match="NNNN_lower_snake.sql"):
        status(conn, mig_dir)


def test_a_version_used_twice_is_refused(conn, mig_dir):
    write(mig_dir, "0001_one.sql", "SELECT 1;")
    write(mig_dir, "0001_other.sql", "SELECT 2;")
    with pytest.raises(MigrationError, match="version 1 is used twice"):
        apply(conn, mig_dir)


def test_other_files_are_ignored_and_versions_sort_numerically(conn, mig_dir):
    write(mig_dir, "README.md", "not a migration")
    write(mig_dir, "0010_ten.sql", "CREATE TABLE ten (id int);")
    write(mig_dir, "0002_two.sql", "CREATE TABLE two (id int);")
    (mig_dir / "notes").mkdir()
    assert [m.version for m in apply(conn, mig_dir)] == [2, 10]


def test_a_missing_migrations_folder_is_an_error_not_zero_migrations(conn, tmp_path):
    missing = tmp_path / "migratoins"
    with pytest.raises(MigrationError, match="migratoins"):
        apply(conn, missing)
    with pytest.raises(MigrationError, match="migratoins"):
        status(conn, missing)
    with pytest.raises(MigrationError, match="migratoins"):
        generate(missing, "first")


def test_apply_waits_for_a_concurrent_runner_and_does_not_apply_twice(fresh_db, mig_dir):
    three_files(mig_dir)
    first = discover(mig_dir)[0]
    with pg.connect(fresh_db, autocommit=True) as other, pg.connect(fresh_db, autocommit=True) as mine:
        # another runner holds the lock while it applies 0001
        other.execute("BEGIN")
        other.execute("SELECT pg_advisory_xact_lock(%s)", (migration_ledger.LOCK_ID,))
        other.execute(migration_ledger.CREATE_LEDGER)
        other.execute(first.sql)
        other.execute("INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                      (first.version, first.name, first.checksum))
        result: dict = {}
        runner = threading.Thread(target=lambda: result.update(done=apply(mine, mig_dir)))
        runner.start()
        with pg.connect(fresh_db, autocommit=True) as watch:
            # wait (no time limit of ours) until our runner is blocked on the advisory lock: the one
            # backend waiting for it (by the lock, not by a pid: behind a pooler the client's pid is not
            # the server's)
            while not watch.execute("SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' "
                                    "AND objid = %s AND NOT granted)", (migration_ledger.LOCK_ID,)).fetchone()[0]:
                assert runner.is_alive(), result
        other.execute("COMMIT")
        runner.join()
    assert [m.version for m in result["done"]] == [2, 3]
    with pg.connect(fresh_db) as check:
        assert check.execute("SELECT version, seen FROM log ORDER BY version").fetchall() == [(1, 0), (2, 1), (3, 2)]


# --------------------------------------------------------------------------- generate


def test_generate_creates_the_next_numbered_file(conn, mig_dir):
    first = generate(mig_dir, "Create users")
    assert first == mig_dir / "0001_create_users.sql" and first.exists()
    assert first.read_text().startswith("-- 0001 create_users:")
    write(mig_dir, "0007_seven.sql", "SELECT 7;")
    nxt = generate(mig_dir, "Add an index, on users(email)!")
    assert nxt.name == "0008_add_an_index_on_users_email.sql"
    assert [m.version for m in discover(mig_dir)] == [1, 7, 8]
    # a generated (comment-only) file applies cleanly
    assert [m.version for m in apply(conn, mig_dir)] == [1, 7, 8]
    assert [s for _, s in status(conn, mig_dir)] == ["applied"] * 3


# --------------------------------------------------------------------------- the CLI


def run_cli(*args: str, database_url: str | None = None, **env_extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "MIGRATIONS_DIR")}
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    env.update(env_extra)
    return subprocess.run([sys.executable, "-m", "chatcore.migrate", *args], capture_output=True, text=True,
                          env=env, timeout=120)


def test_cli_status_apply_generate(fresh_db, mig_dir):
    three_files(mig_dir)
    d = str(mig_dir)
    r = run_cli("--dir", d, "status", database_url=fresh_db)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:3] == ["pending  0001_create_log.sql", "pending  0002_add_items.sql",
                                        "pending  0003_items_price.sql"]
    r = run_cli("--dir", d, "apply", database_url=fresh_db)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["applied 0001_create_log.sql", "applied 0002_add_items.sql",
                                     "applied 0003_items_price.sql", "3 migration(s) applied"]
    r = run_cli("--dir", d, "apply", database_url=fresh_db)
    assert r.returncode == 0 and r.stdout.splitlines() == ["0 migration(s) applied"]
    r = run_cli("--dir", d, "generate", "Add orders", database_url=fresh_db)
    assert r.returncode == 0, r.stderr
    created = Path(r.stdout.strip())
    assert created == mig_dir / "0004_add_orders.sql" and created.exists()
    created.write_text("CREATE TABLE orders (id int);\n")
    r = run_cli("--dir", d, "status", database_url=fresh_db)
    assert r.returncode == 0 and "pending  0004_add_orders.sql" in r.stdout and r.stdout.count("applied ") == 3
    # --database-url instead of the environment; MIGRATIONS_DIR instead of --dir
    r = run_cli("--database-url", fresh_db, "apply", MIGRATIONS_DIR=d)
    assert r.returncode == 0 and r.stdout.splitlines() == ["applied 0004_add_orders.sql", "1 migration(s) applied"]
    with pg.connect(fresh_db) as check:
        assert table_exists(check, "orders")


def test_cli_changed_file_exits_1(fresh_db, mig_dir):
    three_files(mig_dir)
    assert run_cli("--dir", str(mig_dir), "apply", database_url=fresh_db).returncode == 0
    (mig_dir / "0003_items_price.sql").write_text("-- edited after it was applied\n")
    r = run_cli("--dir", str(mig_dir), "status", database_url=fresh_db)
    assert r.returncode == 1 and "CHANGED  0003_items_price.sql" in r.stdout
    r = run_cli("--dir", str(mig_dir), "apply", database_url=fresh_db)
    assert r.returncode == 1
    assert r.stderr.startswith("error: 0003_items_price.sql was applied with checksum") and "Traceback" not in r.stderr


def test_cli_failing_file_exits_1_and_says_which(fresh_db, mig_dir):
    write(mig_dir, "0001_ok.sql", "CREATE TABLE ok (id int);")
    write(mig_dir, "0002_fails.sql", "CREATE TABLE partial (id int); SELECT 1/0;")
    r = run_cli("--dir", str(mig_dir), "apply", database_url=fresh_db)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "0002_fails.sql failed and was rolled back" in r.stderr and "division by zero" in r.stderr
    r = run_cli("--dir", str(mig_dir), "status", database_url=fresh_db)
    assert r.returncode == 0 and r.stdout.splitlines() == ["applied  0001_ok.sql", "pending  0002_fails.sql"]


@pytest.mark.parametrize("args, url, code, needle", [
    pytest.param(["status"], None, 2, "set DATABASE_URL", id="no-database-url"),
    pytest.param(["apply"], None, 2, "set DATABASE_URL", id="apply-no-database-url"),
    pytest.param(["apply"], "postgresql://nobody@127.0.0.1:1/none?connect_timeout=5", 1, "error:", id="unreachable"),
    pytest.param(["frobnicate"], None, 2, "invalid choice", id="unknown-command"),
    pytest.param([], None, 2, "required", id="no-command"),
    pytest.param(["generate"], None, 2, "name", id="generate-without-name"),
])
def test_cli_usage_errors(mig_dir, args, url, code, needle):
    r = run_cli("--dir", str(mig_dir), *args, database_url=url)
    assert r.returncode == code, (r.stdout, r.stderr)
    assert needle in r.stderr and "Traceback" not in r.stderr


def test_cli_bad_file_name_and_missing_folder_exit_1(fresh_db, mig_dir, tmp_path):
    write(mig_dir, "1_bad.sql", "SELECT 1;")
    for args in (["--dir", str(mig_dir), "apply"], ["--dir", str(tmp_path / "nowhere"), "apply"],
                 ["--dir", str(tmp_path / "nowhere"), "generate", "x"]):
        r = run_cli(*args, database_url=fresh_db)
        assert r.returncode == 1, (args, r.stdout, r.stderr)
        assert r.stderr.startswith("error:") and "Traceback" not in r.stderr and "applied" not in r.stdout


# --------------------------------------------------------------------------- the real migrations


def test_real_migrations_apply_cleanly_to_an_empty_database(conn):
    files = discover(default_dir())
    assert files and files[0].path.name == "0001_init.sql"
    assert [m.version for m in apply(conn, default_dir())] == [m.version for m in files]
    assert apply(conn, default_dir()) == []
    assert {s for _, s in status(conn, default_dir())} == {"applied"}
    for table in ("users", "agents", "teams", "team_members", "sessions", "prices", "fx_rates", "runs",
                  "chat_events"):
        assert table_exists(conn, table), table


def test_schema_requires_a_session_to_belong_to_exactly_one_agent_or_team(conn):
    apply(conn, default_dir())
    user, agent, team = uuid7(), uuid7(), uuid7()
    conn.execute("INSERT INTO users (id, sub) VALUES (%s, 'schema-test')", (user,))
    conn.execute("INSERT INTO agents (id, name, model_provider_slug, model_id) VALUES (%s, 'a', 'anthropic', 'm')",
                 (agent,))
    conn.execute("INSERT INTO teams (id, name, model_provider_slug, model_id) VALUES (%s, 't', 'anthropic', 'm')",
                 (team,))
    insert = "INSERT INTO sessions (id, user_id, agent_id, team_id) VALUES (%s, %s, %s, %s)"
    for agent_id, team_id in ((agent, team), (None, None)):
        with pytest.raises(psycopg.errors.CheckViolation) as info:
            conn.execute(insert, (uuid7(), user, agent_id, team_id))
        assert info.value.diag.constraint_name == "sessions_one_agent_or_team"
    conn.execute(insert, (uuid7(), user, agent, None))
    conn.execute(insert, (uuid7(), user, None, team))
    # an update cannot break the rule either
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("UPDATE sessions SET team_id = %s WHERE agent_id = %s", (team, agent))
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("UPDATE sessions SET team_id = NULL WHERE team_id = %s", (team,))
    assert conn.execute("SELECT count(*) FROM sessions").fetchone()[0] == 2
