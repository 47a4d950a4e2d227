"""Every SQL statement of the shipped code lives in ``chatcore.store`` (one module per aggregate);
the schema itself in ``sql/migrations``. Held by reading the source: no string constant outside
``store/`` reads like a statement."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = [ROOT / "layers" / "core" / "chatcore", ROOT / "functions"]
STORE = ROOT / "layers" / "core" / "chatcore" / "store"
# A statement: a keyword that starts one, then what that statement needs (transaction control such
# as BEGIN and COMMIT is the connection's, in chatcore.db).
STATEMENT = re.compile(
    r"^\s*(?:SELECT\b.+\bFROM\b|SELECT\s+\w+\(|INSERT\s+INTO\b|UPDATE\s+\w+\s.*\bSET\b|DELETE\s+FROM\b|WITH\s+\w+\s+AS\b"
    r"|CREATE\s+(?:TABLE|INDEX|ROLE|DATABASE|TEMP)|ALTER\s+\w+|DROP\s+\w+|GRANT\s|REVOKE\s|TRUNCATE\s|LOCK\s+TABLE)",
    re.IGNORECASE | re.DOTALL)


def sql_strings(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            if STATEMENT.match(node.value):
                found.append((node.lineno, node.value.strip().splitlines()[0][:60]))
    return found


def test_the_pattern_finds_statements_and_leaves_prose_alone():
    for statement in ("SELECT id FROM sessions", "select 1 + 1 from x", "\nINSERT INTO runs (id) VALUES (1)",
                      "UPDATE exports SET status = 'ready'", "DELETE FROM uploads WHERE id = 1",
                      "SELECT pg_advisory_xact_lock(%s)", "GRANT USAGE ON SCHEMA public TO {user}",
                      "WITH t AS (SELECT 1) SELECT * FROM t", "CREATE TABLE IF NOT EXISTS x ()"):
        assert STATEMENT.match(statement), statement
    for prose in ("select a session", "delete the session's photos", "update the title", "BEGIN", "COMMIT",
                  "insert a photo"):
        assert not STATEMENT.match(prose), prose


def test_no_sql_statement_outside_the_store():
    found = {}
    for root in SHIPPED:
        for path in sorted(root.rglob("*.py")):
            if STORE in path.parents:
                continue
            strings = sql_strings(path)
            if strings:
                found[str(path.relative_to(ROOT))] = strings
    assert found == {}


def test_the_store_holds_statements():
    # the scan reads the store as it reads the rest: it would find a statement moved out of it
    assert len([s for p in STORE.glob("*.py") for s in sql_strings(p)]) > 50


# What would pin a connection to one server session behind a transaction pooler (RDS Proxy, PgBouncer
# in transaction mode), or break there: session settings, session advisory locks, LISTEN, server-side
# prepared statements, temporary tables that outlive their transaction.
SESSION_STATE = re.compile(
    r"(?:^|;)\s*SET\s+(?!LOCAL\b)(?!TRANSACTION\b)\w|pg_(?:try_)?advisory_lock(?:_shared)?\s*\(|\bLISTEN\s+\w"
    r"|\bPREPARE\s+\w+\s+(?:AS|\()|\bCREATE\s+TEMP(?:ORARY)?\s+TABLE\b(?![^;]*ON\s+COMMIT\s+DROP)")
# (statements are written in capitals here, as every statement of the store is: prose is not SQL)


def test_the_pattern_finds_session_state():
    for pinning in ("SET statement_timeout = 5", "SELECT pg_advisory_lock(1)", "LISTEN turns",
                    "PREPARE q AS SELECT 1", "CREATE TEMPORARY TABLE t (id int)", "SELECT 1; SET search_path = x"):
        assert SESSION_STATE.search(pinning), pinning
    for fine in ("SET LOCAL statement_timeout = 5", "SELECT pg_advisory_xact_lock(1)",
                 "CREATE TEMPORARY TABLE t (id int) ON COMMIT DROP", "UPDATE runs SET status = 'failed'"):
        assert not SESSION_STATE.search(fine), fine


def test_no_statement_keeps_session_state():
    found = [(str(p.relative_to(ROOT)), line, text) for root in SHIPPED for p in sorted(root.rglob("*.py"))
             for line, text in _all_strings(p) if SESSION_STATE.search(text)]
    assert found == []


def test_connections_never_prepare_statements_on_the_server():
    from chatcore import db

    assert db.CONNECT_KWARGS["prepare_threshold"] is None


def _all_strings(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [(n.lineno, n.value) for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
