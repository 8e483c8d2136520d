"""Helpers of the Guide table-mapping conformance tests (tests/dms_docs/test_guide_*.py).

The examples are read from ``guide/mappings/<id>.json``: the Guide's text byte for byte
(as copied into INVENTORY.md). :func:`wrapped` puts a bare rule object or a fragment into
a ``{"rules": [...]}`` document as text, so the example's own bytes are what opendms
parses. Targets are read back with plain SQL (psycopg / pymysql), never through opendms.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import psycopg
import pymysql

from opendms.config import task_from_dict
from opendms.service.run import run_task
from opendms.state import StateStore
from tests.oracles.rows import mysql_connect

MAPPINGS = Path(__file__).parent / "guide" / "mappings"
# Added in front of a bare transformation rule: the Guide prints those without the
# selection rule every document needs. Its rule-id (100) is used by no example.
SELECT_ALL = (
    '{"rule-type": "selection", "rule-id": "100", "rule-name": "100", '
    '"object-locator": {"schema-name": "%%", "table-name": "%%"}, '
    '"rule-action": "include"}'
)


def example(example_id: str) -> str:
    """The example's JSON exactly as the Guide prints it."""
    return (MAPPINGS / f"{example_id}.json").read_text(encoding="utf-8")


def wrapped(text: str, schema: str = "%", table: str = "%") -> str:
    """A bare rule (or a ``"parallel-load": {...}`` fragment already made a rule)
    wrapped in ``{"rules": [...]}``, after a selection rule of ``schema``.``table``."""
    select = SELECT_ALL.replace('"%%"', f'"{schema}"', 1).replace('"%%"', f'"{table}"', 1)
    return '{"rules": [' + select + ",\n" + text + "]}"


def run(
    source: str,
    target: str,
    mappings: str,
    tmp_path: Path,
    *,
    cdc: bool = False,
    settings: dict[str, Any] | None = None,
    target_settings: dict[str, Any] | None = None,
    name: str = "guide",
) -> StateStore:
    """Run the task once (full load; with ``cdc`` full load and CDC until caught up)."""
    task_settings: dict[str, Any] = {"ChangeProcessingTuning": {"BatchApplyTimeoutMin": 0}}
    task_settings.update(settings or {})
    spec = {
        "name": name,
        "source": source,
        "target": {"url": target, "settings": target_settings or {}},
        "migration_type": "full-load-and-cdc" if cdc else "full-load",
        "table_mappings": mappings,
        "task_settings": task_settings,
    }
    store = StateStore(tmp_path / "state.db")
    run_task(task_from_dict(spec, where="test"), store)
    return store


# -- PostgreSQL ------------------------------------------------------------------------


def pg(url: str, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(sql, args)
        return cur.fetchall() if cur.description else []


def pg_exec(url: str, script: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(script)


def pg_tables(url: str) -> set[tuple[str, str]]:
    """Every user table of the database (opendms's own schema left out)."""
    rows = pg(
        url,
        "SELECT table_schema, table_name FROM information_schema.tables "
        "WHERE table_type = 'BASE TABLE' AND table_schema NOT IN "
        "('pg_catalog', 'information_schema', 'opendms')",
    )
    return {(r[0], r[1]) for r in rows}


def pg_columns(url: str, schema: str, table: str) -> list[tuple[str, str]]:
    """(name, type as format_type prints it) in column order."""
    rows = pg(
        url,
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
        "WHERE a.attrelid = (quote_ident(%s) || '.' || quote_ident(%s))::regclass "
        "AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        (schema, table),
    )
    return [(r[0], r[1]) for r in rows]


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def pg_rows(url: str, schema: str, table: str, columns: str = "*", order: str = "1") -> list[Any]:
    return pg(url, f"SELECT {columns} FROM {q(schema)}.{q(table)} ORDER BY {order}")


def pg_ids(url: str, schema: str, table: str, column: str = "id") -> list[Any]:
    return [r[0] for r in pg_rows(url, schema, table, q(column))]


# -- MariaDB --------------------------------------------------------------------------


def my_exec(url: str, statements: Sequence[str]) -> None:
    conn = mysql_connect(url)
    try:
        with conn.cursor() as cur:
            for sql in statements:
                cur.execute(sql)
        conn.commit()
    finally:
        conn.close()


def my(url: str, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    conn: pymysql.connections.Connection[Any] = mysql_connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            return list(cur.fetchall())
    finally:
        conn.close()


def databases(
    create: Callable[[str], str], drop: Callable[[str], None], setups: dict[str, Any]
) -> Iterator[Callable[[str], str]]:
    """A module's source databases, made on first use: ``source(key)`` is the URL of a
    database named after ``key`` holding ``setups[key]`` (created once per module)."""
    made: dict[str, str] = {}

    def source(key: str) -> str:
        if key not in made:
            url = create(key)
            made[key] = url
            setup = setups[key]
            setup(url) if callable(setup) else pg_exec(url, setup)
        return made[key]

    yield source
    for key in made:
        try:
            drop(key)
        except Exception as exc:  # cleanup only
            print(f"warning: could not drop source database {key}: {exc}")
