"""Schema migrations: numbered plain-SQL files in ``sql/migrations``, each applied once.

    python -m chatcore.migrate apply            # apply every pending file, one transaction each
    python -m chatcore.migrate apply --app-user chat_app   # ...then grant the app user its rights
    python -m chatcore.migrate status           # list files with applied / pending / CHANGED
    python -m chatcore.migrate generate NAME    # create the next numbered, empty file

The database is named by ``DATABASE_URL``; ``--dir`` overrides the migrations folder. An
applied file whose checksum has changed is refused: write a new migration instead.

Two database users (README "Database users"): the migrations run as the schema's owner, and the
application connects as a user that owns nothing. ``grant_app_user`` gives that user what the
functions need and no more: USAGE on the schema, SELECT/INSERT/UPDATE/DELETE on the tables and
their sequences (now and, by default privileges, those later migrations create), nothing on the
migration ledger. No CREATE, ALTER, DROP or TRUNCATE: the app cannot change the schema or lose a
table. (TEMPORARY, which the repricing backfill uses, is PUBLIC's by default.)
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import psycopg

from chatcore import cli
from chatcore.store import ledger

FILE_PATTERN = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class MigrationError(RuntimeError):
    """A migration cannot be applied (changed checksum, bad file name, SQL error)."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def default_dir() -> Path:
    env = os.environ.get("MIGRATIONS_DIR")
    if env:
        return Path(env)
    # layers/core/chatcore/migrate.py -> <repo>/sql/migrations
    return Path(__file__).resolve().parents[3] / "sql" / "migrations"


def discover(directory: Path) -> list[Migration]:
    """The migration files of ``directory`` in version order; refuses stray or duplicate names."""
    if not directory.is_dir():  # a mistyped --dir must not look like "0 migrations applied"
        raise MigrationError(f"{directory}: no such migrations folder")
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = FILE_PATTERN.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named NNNN_lower_snake.sql")
        version = int(match.group(1))
        if version in found:
            raise MigrationError(f"{path.name}: version {version} is used twice")
        found[version] = Migration(version, match.group(2), path)
    return [found[v] for v in sorted(found)]


def status(conn: psycopg.Connection, directory: Path) -> list[tuple[Migration, str]]:
    """Each migration with its state: ``applied``, ``pending`` or ``CHANGED``."""
    with conn.transaction():
        applied = ledger.applied(conn)
    result = []
    for m in discover(directory):
        if m.version not in applied:
            result.append((m, "pending"))
        elif applied[m.version][1] != m.checksum:
            result.append((m, "CHANGED"))
        else:
            result.append((m, "applied"))
    return result


def apply(conn: psycopg.Connection, directory: Path) -> list[Migration]:
    """Apply every pending migration, each in its own transaction; return those applied."""
    done: list[Migration] = []
    migrations = discover(directory)
    with conn.transaction():
        ledger.lock(conn)
        applied = ledger.applied(conn)
        for m in migrations:
            if m.version in applied and applied[m.version][1] != m.checksum:
                raise MigrationError(
                    f"{m.path.name} was applied with checksum {applied[m.version][1][:12]} but "
                    f"now has {m.checksum[:12]}: applied migrations must not change; "
                    "add a new migration instead"
                )
    for m in migrations:
        if m.version in applied:
            continue
        try:
            with conn.transaction():
                ledger.lock(conn)
                if ledger.is_applied(conn, m.version):
                    continue  # a concurrent runner got there first
                conn.execute(m.sql)
                ledger.record(conn, m.version, m.name, m.checksum)
        except psycopg.Error as e:
            raise MigrationError(f"{m.path.name} failed and was rolled back: {e}") from e
        done.append(m)
    return done


def grant_app_user(conn: psycopg.Connection, app_user: str) -> None:
    """Grant ``app_user`` the application's rights on the schema this connection's user owns."""
    if ledger.is_current_user(conn, app_user):
        raise MigrationError(f"the app user {app_user!r} is the migration user: use a user that owns no schema")
    with conn.transaction():
        ledger.lock(conn)
        ledger.grant_app_user(conn, app_user)


def generate(directory: Path, name: str) -> Path:
    """Create the next numbered migration file named after ``name``."""
    slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    if not slug:
        raise MigrationError("a migration needs a name made of letters or digits")
    migrations = discover(directory)
    version = (migrations[-1].version + 1) if migrations else 1
    path = directory / f"{version:04d}_{slug}.sql"
    path.write_text(f"-- {version:04d} {slug}: describe why this change is needed.\n\n", encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chatcore.migrate", description=__doc__.split("\n")[0])
    parser.add_argument("--dir", type=Path, default=None, help="migrations folder (default sql/migrations)")
    parser.add_argument("--database-url", default=None, help="default: $DATABASE_URL")
    sub = parser.add_subparsers(dest="command", required=True)
    apply_parser = sub.add_parser("apply", help="apply pending migrations")
    apply_parser.add_argument("--app-user", default=os.environ.get("DB_APP_USER") or None,
                              help="then grant this database user the application's rights (default: $DB_APP_USER)")
    sub.add_parser("status", help="show applied, pending and changed migrations")
    gen = sub.add_parser("generate", help="create the next numbered migration file")
    gen.add_argument("name")
    args = parser.parse_args(argv)
    directory = args.dir or default_dir()
    try:
        if args.command == "generate":
            print(generate(directory, args.name))
            return 0
        url = cli.database_url(args)
        if not url:
            return 2
        with psycopg.connect(url, autocommit=True) as conn:
            if args.command == "apply":
                applied = apply(conn, directory)
                for m in applied:
                    print(f"applied {m.path.name}")
                print(f"{len(applied)} migration(s) applied")
                if args.app_user:
                    grant_app_user(conn, args.app_user)
                    print(f"granted {args.app_user} the application's rights")
            else:
                rows = status(conn, directory)
                for m, state in rows:
                    print(f"{state:8} {m.path.name}")
                if any(state == "CHANGED" for _, state in rows):
                    return 1
    except (MigrationError, psycopg.OperationalError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
