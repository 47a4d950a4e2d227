"""Resume tokens (``resume_tokens``): a browser's way to resume one turn's stream for a few minutes
(``chatcore.web.resume``). Only a token's SHA-256 is stored."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import psycopg

# A token for the caller's turn (a top-level run of their session): nothing for anyone else's.
ISSUE = """
INSERT INTO resume_tokens (token_hash, run_id, user_id, expires_at)
SELECT %(token_hash)s, r.id, u.id, now() + make_interval(secs => %(seconds)s)
FROM runs r
JOIN sessions s ON s.id = r.session_id
JOIN users u ON u.id = s.user_id AND u.sub = %(sub)s
WHERE r.id = %(run_id)s AND r.session_id = %(session_id)s AND r.parent_run_id IS NULL
RETURNING expires_at
"""

# Whose a token is, for this turn, while it lasts: not once its account is being deleted (its users
# row is detached from the sub at once, but the token still names the row).
SUBJECT = """
SELECT u.sub FROM resume_tokens t
JOIN runs r ON r.id = t.run_id
JOIN sessions s ON s.id = r.session_id AND s.user_id = t.user_id
JOIN users u ON u.id = t.user_id
WHERE t.token_hash = %(token_hash)s AND t.run_id = %(run_id)s AND r.session_id = %(session_id)s
  AND t.expires_at > now()
  AND NOT EXISTS (SELECT 1 FROM account_deletions d WHERE d.user_id = t.user_id)
"""

PRUNE = "DELETE FROM resume_tokens WHERE expires_at < now()"


def issue(conn: psycopg.Connection, sub: str, session_id: UUID, run_id: UUID, token_hash: bytes,
          seconds: int) -> datetime | None:
    """Store a token for the caller's turn; when it expires, or None when the turn is not theirs."""
    row = conn.execute(ISSUE, {"token_hash": token_hash, "seconds": seconds, "sub": sub, "session_id": session_id,
                               "run_id": run_id}).fetchone()
    return row["expires_at"] if row else None


def subject(conn: psycopg.Connection, token_hash: bytes, session_id: UUID, run_id: UUID) -> str | None:
    """The ``sub`` a token stands for on this turn, or None (unknown, expired, another turn's)."""
    row = conn.execute(SUBJECT, {"token_hash": token_hash, "session_id": session_id, "run_id": run_id}).fetchone()
    return row["sub"] if row else None


def prune(conn: psycopg.Connection) -> int:
    """Delete the expired tokens; how many."""
    return conn.execute(PRUNE).rowcount
