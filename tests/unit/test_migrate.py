"""The migration runner's file rules, without a database: which files ``discover`` finds and in what
order, and what ``generate`` refuses (applying and the CLI run against Postgres:
tests/integration/test_migrate.py)."""

from __future__ import annotations

import hashlib

import pytest

from chatcore.migrate import MigrationError, default_dir, discover, generate
from tests.support.migrations import write


@pytest.mark.parametrize("name", ["", "!!!", "   ", "__"])
def test_generate_refuses_a_name_without_letters_or_digits(mig_dir, name):
    with pytest.raises(MigrationError, match="letters or digits"):
        generate(mig_dir, name)
    assert list(mig_dir.iterdir()) == []


def test_generate_refuses_a_folder_with_a_bad_file_name(mig_dir):
    write(mig_dir, "bad name.sql", "")
    with pytest.raises(MigrationError):
        generate(mig_dir, "next")


def test_discover_orders_by_version_number_and_ignores_other_files(mig_dir):
    write(mig_dir, "0010_ten.sql", "CREATE TABLE ten (id int);")
    write(mig_dir, "0002_two.sql", "CREATE TABLE two (id int);")
    write(mig_dir, "README.md", "not a migration")
    (mig_dir / "notes").mkdir()
    found = discover(mig_dir)
    assert [(m.version, m.name, m.path.name) for m in found] == [(2, "two", "0002_two.sql"), (10, "ten", "0010_ten.sql")]
    assert found[0].sql == "CREATE TABLE two (id int);"
    assert found[0].checksum == hashlib.sha256(b"CREATE TABLE two (id int);").hexdigest()


@pytest.mark.parametrize("files, message", [
    pytest.param({"0001_one.sql": "", "0001_other.sql": ""}, "version 1 is used twice", id="duplicate-version"),
    pytest.param({"1_init.sql": ""}, "NNNN_lower_snake.sql", id="short-number"),
    pytest.param({"0001_Init.sql": ""}, "NNNN_lower_snake.sql", id="capital-letter"),
    pytest.param({"0001-init.sql": ""}, "NNNN_lower_snake.sql", id="dash"),
])
def test_discover_refuses_stray_and_duplicate_names(mig_dir, files, message):
    for name, text in files.items():
        write(mig_dir, name, text)
    with pytest.raises(MigrationError, match=message):
        discover(mig_dir)


def test_discover_refuses_a_missing_folder(tmp_path):
    with pytest.raises(MigrationError, match="no such migrations folder"):
        discover(tmp_path / "migratoins")


def test_the_real_migrations_are_well_named_and_migrations_dir_overrides_them(monkeypatch, mig_dir):
    monkeypatch.delenv("MIGRATIONS_DIR", raising=False)
    real = discover(default_dir())
    assert real[0].path.name == "0001_init.sql" and default_dir().parts[-2:] == ("sql", "migrations")
    monkeypatch.setenv("MIGRATIONS_DIR", str(mig_dir))
    assert default_dir() == mig_dir and discover(default_dir()) == []
