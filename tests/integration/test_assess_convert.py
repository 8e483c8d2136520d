"""``opendms assess`` of a ``convert_schema`` task: the converted DDL is tried on the real
target in throwaway schemas, each refused object is reported, nothing is left behind; and
the type round trips that lose form are flagged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from opendms.assess import Check, Status, assess
from opendms.config import task_from_dict
from tests.integration.sample_schemas import PAGILA
from tests.integration.test_convert_real import WIDE
from tests.support.sql import connect, execute, query


def _spec(source: str, target: str, convert_schema: bool = True) -> Any:
    return task_from_dict(
        {
            "name": "a",
            "source": source,
            "target": target,
            "migration_type": "full-load",
            "convert_schema": convert_schema,
        },
        where="test",
    )


def _by_id(checks: list[Check]) -> dict[str, Check]:
    return {c.id: c for c in checks}


def _leftovers(mysql_url: str) -> list[Any]:
    conn = connect(mysql_url)
    try:
        return query(conn, "SHOW TABLES") + query(conn, "SHOW DATABASES LIKE 'opendms\\_check%'")
    finally:
        conn.close()


def test_refused_ddl_is_a_failed_check(pg_db: str, mysql_target_db: str) -> None:
    execute(pg_db, WIDE)
    checks = _by_id(assess(_spec(pg_db, mysql_target_db)))
    ddl = checks["convert-schema-ddl"]
    assert ddl.status is Status.FAILED
    # WIDE's table the target refuses, then its key and its index, which are not tried;
    # not the table "fine" (the view is not part of a task's tables)
    assert [o.split(":", 1)[0] for o in ddl.objects] == [
        "table public.notes",
        "constraint public.notes.PRIMARY KEY",
        "index public.notes.notes_c0",
    ], ddl.objects
    assert ddl.objects[0].startswith("table public.notes: the mysql target refused it: Row size")
    assert "constraint public.notes.PRIMARY KEY: not created" in ddl.objects[1]
    assert "opendms_check" not in " ".join(ddl.objects)
    assert _leftovers(mysql_target_db) == []


def test_pagila_tables_pass_on_mariadb(pg_db: str, mysql_target_db: str) -> None:
    execute(pg_db, PAGILA)
    checks = _by_id(assess(_spec(pg_db, mysql_target_db)))
    assert checks["convert-schema-ddl"].status is Status.PASSED, checks["convert-schema-ddl"]
    # a task's tables: PAGILA's, its partitions being part of their table (README: on a
    # non-PostgreSQL target a partitioned table is one plain table)
    tables = [sql for sql in PAGILA if sql.lstrip().startswith("CREATE TABLE")]
    count = sum("PARTITION OF" not in sql for sql in tables)
    assert f"{count} table(s)" in checks["convert-schema-ddl"].message
    changes = checks["convert-schema-changes"]
    assert changes.status is Status.WARNING
    assert any(o.startswith("table public.payment: partitioned by RANGE") for o in changes.objects)
    assert any("domain public.year became its base type INT" in o for o in changes.objects)
    assert _leftovers(mysql_target_db) == []


def test_pagila_tables_pass_on_postgres(pg_db: str, pg_target_db: str) -> None:
    execute(pg_db, PAGILA)
    checks = _by_id(assess(_spec(pg_db, pg_target_db)))
    assert checks["convert-schema-ddl"].status is Status.PASSED, checks["convert-schema-ddl"]
    conn = connect(pg_target_db)
    left = query(
        conn,
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')",
    )
    assert left == [(0,)]
    assert query(conn, "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'opendms%'") == []
    conn.close()


LOSSY = [
    "CREATE DOMAIN year AS integer CHECK (VALUE > 1900)",
    "CREATE TABLE film (id int PRIMARY KEY, active boolean, fulltext tsvector, "
    "release_year year, tags text[], addr inet)",
]


def test_lossy_round_trips_are_flagged(pg_db: str, mysql_target_db: str) -> None:
    execute(pg_db, LOSSY)
    plain = _by_id(assess(_spec(pg_db, mysql_target_db, convert_schema=False)))
    types = plain["type-conversions"]
    assert types.status is Status.WARNING
    assert types.objects == (
        "public.film.active: boolean becomes TINYINT(1): it reads back as the integers 1 and 0",
        "public.film.fulltext: tsvector becomes text: the lexemes are kept as text, full-text "
        "search is not",
        "public.film.release_year: domain year becomes text: its base type (integer) and checks "
        "are not kept (convert_schema: true creates the base type with the checks)",
        "public.film.tags: array becomes a JSON array",
        "public.film.addr: type inet becomes text",
    )
    converted = _by_id(assess(_spec(pg_db, mysql_target_db)))["type-conversions"]
    # convert_schema: the domain becomes its base type INT with the check (README, Schema
    # conversion), so its round trip is no longer lossy; the other four still are
    assert converted.objects == tuple(o for o in types.objects if "release_year" not in o)


def test_convert_schema_to_a_lake_is_a_failed_check(pg_db: str, tmp_path: Path) -> None:
    execute(pg_db, ["CREATE TABLE t (id int PRIMARY KEY)"])
    checks = _by_id(assess(_spec(pg_db, f"file://{tmp_path}/lake")))
    ddl = checks["convert-schema-ddl"]
    assert ddl.status is Status.FAILED and "convert_schema needs a database target" in ddl.message
