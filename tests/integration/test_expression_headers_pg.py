"""DMS header columns and operation_indicator on a real PostgreSQL source and target:
full load, then a CDC update and delete."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg

from opendms.config import task_from_dict
from opendms.service.run import run_task
from opendms.state import StateStore


def _add(rid: int, name: str, expression: str, length: int) -> dict[str, Any]:
    return {
        "rule-type": "transformation",
        "rule-id": str(rid),
        "rule-name": name,
        "rule-target": "column",
        "object-locator": {"schema-name": "public", "table-name": "items"},
        "rule-action": "add-column",
        "value": name,
        "expression": expression,
        "data-type": {"type": "string", "length": length},
    }


RULES = {
    "rules": [
        {
            "rule-type": "selection",
            "rule-id": "1",
            "rule-name": "items",
            "object-locator": {"schema-name": "public", "table-name": "items"},
            "rule-action": "include",
        },
        _add(2, "op", "$AR_H_OPERATION", 10),
        _add(3, "src_table", "$AR_M_SOURCE_TABLE_NAME", 30),
        _add(4, "flag", "operation_indicator('D', 'U', 'I')", 1),
        _add(5, "pos", "$AR_H_STREAM_POSITION", 30),
    ]
}


def test_headers_in_full_load_and_cdc(pg_db: str, pg_target_db: str, tmp_path: Path) -> None:
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, name text)")
        conn.execute("INSERT INTO items SELECT g, 'n' || g FROM generate_series(1, 3) g")
    spec = task_from_dict(
        {
            "name": "headers",
            "source": pg_db,
            "target": pg_target_db,
            "migration_type": "full-load-and-cdc",
            "table_mappings": RULES,
            "task_settings": {"ChangeProcessingTuning": {"BatchApplyTimeoutMin": 0}},
        },
        where="test",
    )
    store = StateStore(tmp_path / "state.db")
    run_task(spec, store)
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute("UPDATE items SET name = 'changed' WHERE id = 2")
        conn.execute("DELETE FROM items WHERE id = 3")
        conn.execute("INSERT INTO items VALUES (4, 'new')")
    run_task(spec, store)
    with psycopg.connect(pg_target_db) as conn:
        rows = conn.execute(
            "SELECT id, name, op, src_table, flag, pos FROM items ORDER BY id"
        ).fetchall()
    assert [r[:5] for r in rows] == [
        (1, "n1", "INSERT", "items", "I"),  # full load
        (2, "changed", "UPDATE", "items", "U"),
        (3, "n3", "DELETE", "items", "D"),  # kept and flagged (operation_indicator)
        (4, "new", "INSERT", "items", "I"),
    ]
    assert rows[0][5] == ""  # no stream position in a full load
    assert all("/" in r[5] for r in rows[1:])  # the WAL position of the change's commit
