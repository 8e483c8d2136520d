"""Endpoints of each kind for the tests that run over pairs of engines: one table per
role instead of an if/elif chain over engine names in every test file.

A kind is a short test name: ``pg``, ``mysql`` (``mariadb`` too: the harness's MariaDB),
``sqlite`` (a file in the test's directory) or ``lake`` (a local Parquet lake). Server
kinds come from the harness's fixtures, so a test only starts the servers it uses.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

_SOURCE_FIXTURES = {"pg": "pg_db", "mysql": "mysql_db", "mariadb": "mysql_db"}
_TARGET_FIXTURES = {"pg": "pg_target_db", "mysql": "mysql_target_db", "mariadb": "mysql_target_db"}
_FILES: dict[str, Callable[[Path, str], str]] = {
    "sqlite": lambda folder, role: f"sqlite:///{folder / f'{role}.db'}",
    "lake": lambda folder, role: f"file://{folder / 'lake'}?DataFormat=parquet",
}


def source_url(kind: str, request: pytest.FixtureRequest, folder: Path) -> str:
    """A source endpoint of ``kind`` (a SQLite source is ``folder``/source.db)."""
    return _url(kind, request, folder, "source", _SOURCE_FIXTURES)


def target_url(kind: str, request: pytest.FixtureRequest, folder: Path) -> str:
    """A target endpoint of ``kind`` (SQLite: ``folder``/target.db; a lake:
    ``folder``/lake, Parquet)."""
    return _url(kind, request, folder, "target", _TARGET_FIXTURES)


def _url(
    kind: str, request: pytest.FixtureRequest, folder: Path, role: str, fixtures: dict[str, str]
) -> str:
    if kind in fixtures:
        return str(request.getfixturevalue(fixtures[kind]))
    if kind in _FILES:
        return _FILES[kind](folder, role)
    raise ValueError(f"no {role} endpoint of kind {kind!r} for tests")


def table_name(kind: str, schema: str, table: str) -> str:
    """How SQL on a target of ``kind`` names ``table`` of the task's ``schema`` (the
    PostgreSQL target keeps the source's schema; MySQL and SQLite use the connection's)."""
    return f'"{schema}".{table}' if kind == "pg" else table
