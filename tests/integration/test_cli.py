"""The CLI over the public API, on SQLite and a local lake (no server needed)."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml
from click.testing import CliRunner

from opendms.cli.main import cli
from opendms.demo import build_retail


@pytest.fixture
def retail(tmp_path: Path) -> Path:
    db = tmp_path / "retail.db"
    build_retail(db, orders=2000)
    return db


def _invoke(tmp_path: Path, *args: str) -> tuple[int, str]:
    runner = CliRunner()
    result = runner.invoke(cli, ["--state", str(tmp_path / "state.db"), *args])
    return result.exit_code, result.output


def _task(tmp_path: Path, **fields: object) -> Path:
    path = tmp_path / "task.yaml"
    path.write_text(yaml.safe_dump(fields))
    return path


KEYS = {"customers": "customer_id", "products": "product_id", "orders": "order_id"}
KEYS["order_items"] = "item_id"


def _rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def _table(db: Path, table: str) -> list[tuple[Any, ...]]:
    return _rows(db, f"SELECT * FROM {table} ORDER BY {KEYS[table]}")


# each table as the demo's mappings (opendms.demo.MAPPINGS) give it: no phone, products not
# discontinued, order_items with line_total = quantity * price (computed below, exactly)
MAPPED_SQL = {
    "customers": "SELECT customer_id, first_name, last_name, email, address, city, state, "
    "zip_code, registration_date FROM customers ORDER BY customer_id",
    "products": "SELECT * FROM products WHERE category <> 'Discontinued' ORDER BY product_id",
    "orders": "SELECT * FROM orders ORDER BY order_id",
    "order_items": "SELECT * FROM order_items ORDER BY item_id",
}
DATETIMES = {"registration_date", "order_date"}  # declared DATETIME in opendms.demo.SCHEMA
DECIMALS = {"price", "total_amount", "line_total"}  # declared DECIMAL(p,2)


def _mapped(db: Path, table: str) -> list[dict[str, Any]]:
    """The source's rows through the demo's mappings, decimals as Decimal."""
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        rows = [dict(r) for r in conn.execute(MAPPED_SQL[table])]
    finally:
        conn.close()
    for row in rows:
        for name in DECIMALS & row.keys():
            row[name] = Decimal(str(row[name]))
        if table == "order_items":
            row["line_total"] = row["quantity"] * row["price"]
    return rows


def _in_lake(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Source rows as Parquet gives them back: DATETIME text as a timestamp."""
    return [
        tuple(datetime.fromisoformat(v) if k in DATETIMES else v for k, v in row.items())
        for row in rows
    ]


def _in_copy(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Source rows as a SQLite target stores them (README, Types): DATETIME text with six
    fraction digits."""
    return [
        tuple(
            datetime.fromisoformat(v).strftime("%Y-%m-%d %H:%M:%S.%f") if k in DATETIMES else v
            for k, v in row.items()
        )
        for row in rows
    ]


def _copied(db: Path, table: str) -> list[tuple[Any, ...]]:
    """A SQLite target's table, decimals as Decimal (SQLite keeps them as REAL)."""
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        rows = [dict(r) for r in conn.execute(f"SELECT * FROM {table} ORDER BY {KEYS[table]}")]
    finally:
        conn.close()
    return [tuple(Decimal(str(v)) if k in DECIMALS else v for k, v in row.items()) for row in rows]


def _lake_load(folder: Path, drop: tuple[str, ...] = ()) -> list[tuple[Any, ...]]:
    """The rows of a table's LOAD files, read with pyarrow, in the first column's order."""
    files = sorted(folder.glob("LOAD*.parquet"))
    assert files, folder
    rows = [r for f in files for r in pq.read_table(f).to_pylist()]
    out = [tuple(v for k, v in r.items() if k not in drop) for r in rows]
    return sorted(out, key=lambda r: r[0])


def _as_copied(db: Path, table: str) -> list[tuple[Any, ...]]:
    """The source table's rows as a SQLite target holds them (README, Types): DATETIME
    text with six fraction digits, every other value as the source has it."""
    declared = [r[2].upper() for r in _rows(db, f"PRAGMA table_info({table})")]
    return [
        tuple(
            datetime.fromisoformat(v).strftime("%Y-%m-%d %H:%M:%S.%f")
            if t == "DATETIME" and v is not None
            else v
            for t, v in zip(declared, row, strict=True)
        )
        for row in _table(db, table)
    ]


def test_help_on_every_command() -> None:
    runner = CliRunner()
    for args in (
        [],
        ["task"],
        ["task", "run"],
        ["task", "status"],
        ["task", "tables"],
        ["task", "delete"],
        ["endpoint"],
        ["endpoint", "test"],
        ["demo"],
    ):
        result = runner.invoke(cli, [*args, "--help"])
        assert result.exit_code == 0 and "Usage:" in result.output


def test_run_status_tables_delete(retail: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.db"
    task = _task(tmp_path, name="copy", source=f"sqlite:///{retail}", target=f"sqlite:///{copy}")
    code, out = _invoke(tmp_path, "task", "run", str(task))
    assert code == 0, out
    for table in KEYS:
        assert _table(copy, table) == _as_copied(retail, table), table
    code, out = _invoke(tmp_path, "task", "status", "copy")
    assert code == 0 and "stopped" in out and "100%" in out and "full-load" in out
    code, out = _invoke(tmp_path, "task", "status", "--json", "copy")
    status = json.loads(out)
    assert (status["status"], status["progress_percent"], status["migration_type"]) == (
        "stopped",
        100,
        "full-load",
    )
    code, out = _invoke(tmp_path, "task", "tables", "copy")
    assert code == 0 and "Table completed" in out and "main.orders" in out
    code, out = _invoke(tmp_path, "task", "tables", "--json", "copy")
    stats = {(t["SchemaName"], t["TableName"]): t for t in json.loads(out)}
    assert {k: (t["TableState"], t["FullLoadRows"]) for k, t in stats.items()} == {
        ("main", table): ("Table completed", len(_table(retail, table))) for table in KEYS
    }
    code, out = _invoke(tmp_path, "task", "delete", "copy")
    assert code == 0
    code, out = _invoke(tmp_path, "task", "status", "copy")
    assert code == 2 and "no task named 'copy'" in out


def test_rerun_converges(retail: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.db"
    for mode in ("DROP_AND_CREATE", "TRUNCATE_BEFORE_LOAD", "TRUNCATE_BEFORE_LOAD"):
        task = _task(
            tmp_path,
            name="copy",
            source=f"sqlite:///{retail}",
            target=f"sqlite:///{copy}",
            task_settings={"FullLoadSettings": {"TargetTablePrepMode": mode}},
        )
        code, out = _invoke(tmp_path, "task", "run", str(task))
        assert code == 0, out
        for table in KEYS:
            assert _table(copy, table) == _as_copied(retail, table), (mode, table)


def test_do_nothing_on_loaded_table_fails_the_task(retail: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.db"
    base = {"name": "copy", "source": f"sqlite:///{retail}", "target": f"sqlite:///{copy}"}
    assert _invoke(tmp_path, "task", "run", str(_task(tmp_path, **base)))[0] == 0
    task = _task(
        tmp_path, **base, task_settings={"FullLoadSettings": {"TargetTablePrepMode": "DO_NOTHING"}}
    )
    code, out = _invoke(tmp_path, "task", "run", str(task))
    assert code == 1 and "UNIQUE constraint failed" in out
    code, out = _invoke(tmp_path, "task", "status", "copy")
    assert "failed" in out
    for table in KEYS:  # the first run's rows, untouched
        assert _table(copy, table) == _as_copied(retail, table), table


def test_selection_filter_and_transformations(retail: Path, tmp_path: Path) -> None:
    from opendms.demo import MAPPINGS

    lake = tmp_path / "lake"
    task = _task(
        tmp_path,
        name="lake",
        source=f"sqlite:///{retail}",
        target={"url": f"file://{lake}", "settings": "DataFormat=parquet"},
        table_mappings=MAPPINGS,
    )
    code, out = _invoke(tmp_path, "task", "run", str(task))
    assert code == 0, out
    for table in KEYS:  # every row, value for value, as the mappings give it
        want = _in_lake(_mapped(retail, table))
        assert _lake_load(lake / "main" / table) == want and want, table
    columns = pq.read_schema(next((lake / "main" / "customers").glob("LOAD*.parquet"))).names
    assert "phone" not in columns and "email" in columns


@pytest.mark.parametrize(
    ("fields", "message", "exit_code"),
    [
        (
            {"migration_type": "cdc", "CdcStopPosition": "commit_time:tomorrow"},
            "'tomorrow' is not an ISO date-time",
            2,
        ),
        ({"migration_type": "cdc", "CdcStartPosition": "banana"}, "'banana' is not a", 2),
        (
            {
                "table_mappings": {
                    "rules": [
                        {
                            "rule-type": "selection",
                            "rule-id": "1",
                            "rule-name": "x",
                            "object-locator": {"schema-name": "main", "table-name": "nope%"},
                            "rule-action": "include",
                        }
                    ]
                }
            },
            "no tables captured",
            1,
        ),
        ({"table_mappings": {"rules": [{"rule-type": "selekt"}]}}, "$.rules[0].rule-type", 2),
        ({"target": "ftp://x/y"}, "unknown scheme 'ftp'", 2),
    ],
)
def test_task_errors(
    retail: Path, tmp_path: Path, fields: dict[str, object], message: str, exit_code: int
) -> None:
    """Usage and configuration errors exit 2, a task that cannot run exits 1."""
    spec = {"name": "bad", "source": f"sqlite:///{retail}", "target": f"sqlite:///{tmp_path}/c.db"}
    code, out = _invoke(tmp_path, "task", "run", str(_task(tmp_path, **{**spec, **fields})))
    assert code == exit_code, out
    assert message in out and "Traceback" not in out


def test_refuses_to_load_a_table_onto_itself(retail: Path, tmp_path: Path) -> None:
    task = _task(tmp_path, name="self", source=f"sqlite:///{retail}", target=f"sqlite:///{retail}")
    code, out = _invoke(tmp_path, "task", "run", str(task))
    assert code == 1 and "the target is the source table itself" in out
    reference = tmp_path / "reference.db"
    build_retail(reference, orders=2000)  # the source as the fixture made it
    for table in KEYS:
        assert _table(retail, table) == _table(reference, table), table


def test_demo(tmp_path: Path) -> None:
    code, out = _invoke(tmp_path, "demo", "--dir", str(tmp_path / "demo"), "--orders", "3000")
    assert code == 0, out
    assert "retail-to-lake" in out and "retail-to-sqlite" in out and "duckdb" in out
    lake = tmp_path / "demo" / "lake" / "main"
    reference = tmp_path / "reference.db"
    build_retail(reference, orders=3000)  # the source as the full load found it
    for table in KEYS:  # the LOAD files: (Op, extracted_at) columns, then the mapped rows
        want = _in_lake(_mapped(reference, table))
        assert _lake_load(lake / table, drop=("Op", "extracted_at")) == want, table
    # the seed 004 CDC statements (opendms.demo.apply_seed_changes) changed the source after
    # the full load; the SQLite copy holds it as it is now, every table, CDC's rows included
    source, copy = tmp_path / "demo" / "retail.db", tmp_path / "demo" / "retail-copy.db"
    for table in KEYS:
        assert _copied(copy, table) == _in_copy(_mapped(source, table)), table
    assert _rows(copy, "SELECT price FROM products WHERE product_id = 101") == [(1199.99,)]
    assert _rows(copy, "SELECT count(*) FROM orders WHERE order_id = 1005") == [(0,)]
    cdc = _rows_of(lake / "customers", "Op", "customer_id", "first_name")
    assert cdc == [("I", 601, "Emily")]  # 600 customers for 3000 orders
    assert _rows_of(lake / "orders", "Op", "order_id") == [("D", 1005)]


def _rows_of(folder: Path, *columns: str) -> list[tuple[Any, ...]]:
    """``columns`` of the rows of a table's CDC files (named by their time stamp)."""
    files = sorted(folder.glob("2*.parquet"))
    return [tuple(r[c] for c in columns) for f in files for r in pq.read_table(f).to_pylist()]
