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
