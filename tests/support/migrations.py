"""A migrations folder of the test's own (the ``mig_dir`` fixture) and the files written into it, for
the migration runner's tests with and without a database."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture()
def mig_dir(tmp_path) -> Path:
    """An empty migrations folder."""
    d = tmp_path / "migrations"
    d.mkdir()
    return d


def write(directory: Path, name: str, text: str) -> Path:
    """The migration file ``name`` in ``directory``, holding ``text``."""
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path
