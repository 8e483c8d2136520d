"""``opendms demo``: the seed changes reach the lake as I, U and D rows, the DuckDB queries
it prints give the source's current state and the full load's, and a second demo in the
same folder leaves no change of the first one in the lake. The lake is read by the
independent reader (:mod:`tests.oracles.lake`): each table's exact CDC rows, and every
table, the filtered one included, folded by Op equal to the source read with SQL."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
from click.testing import CliRunner

from opendms.cli.main import cli
from opendms.demo import build_retail
from tests.oracles.lake import read_lake

ORDERS = 300


def _demo(tmp_path: Path) -> str:
    args = ["--state", str(tmp_path / "state.db"), "demo", "--dir", str(tmp_path / "demo")]
    result = CliRunner().invoke(cli, [*args, "--orders", str(ORDERS)])
    assert result.exit_code == 0, result.output
    return result.output


def _printed_sql(output: str) -> tuple[str, str]:
    """The two queries the demo prints, each on its own line."""
    lines = [line.strip() for line in output.splitlines()]
    now = next(line for line in lines if line.startswith("WITH files AS"))
    load = next(line for line in lines if line.startswith("SELECT status") and "LOAD" in line)
    return now, load


def _by_status(rows: list[tuple[Any, ...]]) -> dict[str, tuple[int, Decimal]]:
    return {str(s): (int(n), Decimal(str(t)).quantize(Decimal("0.01"))) for s, n, t in rows}


def _sqlite(db: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(sql, args).fetchall()
    conn.close()
    return rows


STATUS_SQL = "SELECT status, count(*), sum(total_amount) FROM orders GROUP BY 1"
LAKE_SETTINGS = "DataFormat=parquet;timestampColumnName=extracted_at;includeOpForFullLoad=true"
KEYS = {
    "main.customers": ["customer_id"],
    "main.products": ["product_id"],
    "main.orders": ["order_id"],
    "main.order_items": ["item_id"],
}
# each table as the demo's mappings give it: no phone, active products, a line total
SOURCE_SQL = {
    "customers": "SELECT customer_id, first_name, last_name, email, address, city, state, "
    "zip_code, registration_date FROM customers",
    "products": "SELECT * FROM products WHERE category <> 'Discontinued'",
    "orders": "SELECT * FROM orders",
    "order_items": "SELECT *, quantity * price AS line_total FROM order_items",
}
DECIMALS = {"price", "total_amount", "line_total"}


def test_demo_queries_and_the_seed_changes(tmp_path: Path) -> None:
    _demo(tmp_path)
    output = _demo(tmp_path)  # a second demo in the same folder
    source = tmp_path / "demo" / "retail.db"
    reference = tmp_path / "reference.db"
    build_retail(reference, ORDERS)  # the source before the seed changes
    now, load = _printed_sql(output)
    assert _by_status(_duckdb(now)) == _by_status(_sqlite(source, STATUS_SQL))
    assert _by_status(_duckdb(load)) == _by_status(_sqlite(reference, STATUS_SQL))
    lake = read_lake(tmp_path / "demo" / "lake", LAKE_SETTINGS, keys=KEYS)
    assert all(len(t.cdc) == 1 for t in lake.tables.values())  # none of the first demo's
    new_customer = ORDERS // 5 + 1
    items = [
        r[0] for r in _sqlite(reference, "SELECT item_id FROM order_items WHERE order_id = 1005")
    ]
    assert len(items) == 4
    assert {name: t.op_rows(KEYS[name][0]) for name, t in lake.tables.items()} == {
        "main.customers": [("I", new_customer)],
        "main.products": [("U", 101)],  # one U row with the new image
        "main.orders": [("D", 1005)],
        "main.order_items": [("D", i) for i in items],
    }
    (customer,) = lake["main.customers"].changes
    assert customer.row["first_name"] == "Emily" and "phone" not in customer.row
    (product,) = lake["main.products"].changes
    assert (str(product.row["price"]), product.row["stock_quantity"]) == ("1199.99", 45)
    assert product.row["product_name"] == "Product 101"
    for table, change in (("customers", customer), ("products", product)):  # whole new images
        key = KEYS[f"main.{table}"][0]
        current = _sqlite_rows(source, SOURCE_SQL[table])
        (now_row,) = [r for r in current if r[key] == change.row[key]]
        assert _values(change.row) == _values(now_row), table
    deleted = lake["main.orders"].changes + lake["main.order_items"].changes
    old = _sqlite(reference, "SELECT * FROM orders WHERE order_id = 1005")
    old += _sqlite(reference, "SELECT *, quantity * price FROM order_items WHERE order_id = 1005")
    assert [_plain(tuple(c.row.values())) for c in deleted] == [_plain(r) for r in old]
    for table, sql in SOURCE_SQL.items():  # every table now, the filtered one included
        want = sorted(_values(r) for r in _sqlite_rows(source, sql))
        got = sorted(_values(r) for r in lake[f"main.{table}"].rows)
        assert got == want and got, table
    assert "    U  product_id=101" in output  # the demo shows the lake's U row


def _duckdb(sql: str) -> list[tuple[Any, ...]]:
    relation = duckdb.sql(sql)
    assert relation is not None, sql
    return relation.fetchall()


def _sqlite_rows(db: Path, sql: str) -> list[dict[str, Any]]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        rows = [dict(r) for r in conn.execute(sql).fetchall()]
    conn.close()
    return rows


def _values(row: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """(column, value as text) in column order; decimal columns (REAL or INTEGER in
    SQLite, Decimal in Parquet) to two places."""
    return tuple(
        (k, f"{Decimal(str(v)):.2f}" if k in DECIMALS and v is not None else str(v))
        for k, v in row.items()
    )


def _plain(row: tuple[Any, ...]) -> tuple[str, ...]:
    """Values as text, decimal numbers (float in SQLite, Decimal in Parquet) to two places."""
    out = []
    for value in row:
        if isinstance(value, (float, Decimal)):
            value = f"{Decimal(str(value)):.2f}"
        out.append(str(value))
    return tuple(out)
