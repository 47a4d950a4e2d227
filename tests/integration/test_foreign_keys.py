"""Every foreign key whose parent rows are ever deleted has an index on its referencing columns, asked
of pg_catalog on the migrated schema. Without one, deleting a parent row scans the whole child table
(once per deleted row): a session of many turns took seconds to delete at 10 million messages before
migration 0013 indexed runs.parent_run_id (docs/benchmarks.md, "Scale: 10 million messages")."""

from __future__ import annotations

import re
from pathlib import Path

from tests.support import databases

STORE = Path(__file__).resolve().parents[2] / "layers" / "core" / "chatcore" / "store"

# Catalog tables: rows are added or updated (by the catalog sync, the price and rate loads), never
# deleted, so a key referencing them is never looked up from the parent's side; an index on, say,
# chat_events.price_id would only cost every message a write.
NEVER_DELETED = {"agents", "teams", "prices", "fx_rates"}

FOREIGN_KEYS = """
SELECT c.conname, c.conrelid::regclass::text AS child, c.confrelid::regclass::text AS parent,
       c.confdeltype AS on_delete,
       array(SELECT a.attname FROM unnest(c.conkey) k JOIN pg_attribute a
             ON a.attrelid = c.conrelid AND a.attnum = k ORDER BY a.attname)::text[] AS columns,
       EXISTS (
         SELECT 1 FROM pg_index i
         WHERE i.indrelid = c.conrelid AND i.indisvalid
           -- the key's columns lead the index, in any order
           AND (SELECT array_agg(x ORDER BY x) FROM unnest(i.indkey[0:cardinality(c.conkey) - 1]) x)
               = (SELECT array_agg(x ORDER BY x) FROM unnest(c.conkey) x)
           -- a partial index serves the lookup only if its predicate is implied by "key = value"
           AND (i.indpred IS NULL
                OR pg_get_expr(i.indpred, i.indrelid) = ANY(
                     SELECT '(' || a.attname || ' IS NOT NULL)' FROM pg_attribute a
                     WHERE a.attrelid = c.conrelid AND a.attnum = ANY(c.conkey)))
       ) AS indexed
FROM pg_constraint c
WHERE c.contype = 'f' AND c.connamespace = 'public'::regnamespace
ORDER BY child, conname
"""


def test_every_foreign_key_a_parent_delete_looks_up_is_indexed(stack):
    with databases.fresh(stack, "fk_indexes") as (_url, conn):
        keys = conn.execute(FOREIGN_KEYS).fetchall()
        assert len(keys) >= 20, keys  # the schema's keys were read
        assert any(k["conname"] for k in keys if k["child"] == "runs" and k["columns"] == ["parent_run_id"]
                   and k["indexed"])
        missing = [f"{k['child']}({', '.join(k['columns'])}) -> {k['parent']}" for k in keys
                   if not k["indexed"] and k["parent"] not in NEVER_DELETED]
        assert missing == [], f"foreign keys without an index on their columns: {missing}"
        # the catalog keys left unindexed are ones no delete can look up: no ON DELETE action...
        unindexed = [k for k in keys if not k["indexed"]]
        assert all(k["on_delete"] in ("a", "r") for k in unindexed), unindexed
        # ...and the application deletes no catalog row
        sql = "\n".join(p.read_text() for p in sorted(STORE.glob("*.py")))
        deleted = set(re.findall(r"DELETE\s+FROM\s+(\w+)", sql, flags=re.IGNORECASE))
        assert deleted and not (deleted & NEVER_DELETED), deleted


def test_the_parent_run_index_serves_a_member_lookup(stack):
    """The partial index is what the cascade's lookup (parent_run_id = $1) plans with."""
    with databases.fresh(stack, "fk_plan") as (_url, conn):
        with conn.transaction(force_rollback=True):
            conn.execute("SET LOCAL enable_seqscan = off")
            plan = conn.execute("EXPLAIN SELECT 1 FROM runs WHERE parent_run_id = "
                                "'00000000-0000-7000-8000-000000000000'").fetchall()
        text = "\n".join(r["QUERY PLAN"] for r in plan)
        assert "runs_parent_run" in text, text
