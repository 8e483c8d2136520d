"""``opendms demo``: the seed changes reach the lake as I, U and D rows, the DuckDB queries
it prints give the source's current state and the full load's, and a second demo in the
same folder leaves no change of the first one in the lake."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
from click.testing import CliRunner

from opendms.cli.main import cli
from opendms.demo import build_retail
from tests.integration.lakeobjects import LakeObjects

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


def test_demo_queries_and_the_seed_changes(tmp_path: Path) -> None:
    _demo(tmp_path)
    output = _demo(tmp_path)  # a second demo in the same folder
    source = tmp_path / "demo" / "retail.db"
    reference = tmp_path / "reference.db"
    build_retail(reference, ORDERS)  # the source before the seed changes
    now, load = _printed_sql(output)
    assert _by_status(duckdb.sql(now).fetchall()) == _by_status(_sqlite(source, STATUS_SQL))
    assert _by_status(duckdb.sql(load).fetchall()) == _by_status(_sqlite(reference, STATUS_SQL))
    assert "    U  product_id=101" in output
    lake = LakeObjects(f"file://{tmp_path / 'demo' / 'lake'}")
    tables = ("customers", "products", "orders", "order_items")
    cdc = {t: lake.table_keys("main", t)[1] for t in tables}
    assert all(len(keys) == 1 for keys in cdc.values())  # none of the first demo's
    rows = {
        t: lake.parquet(keys[0]).drop_columns(["extracted_at"]).to_pylist()
        for t, keys in cdc.items()
    }
    (customer,) = rows["customers"]
    assert (customer["Op"], customer["customer_id"], customer["first_name"]) == (
        "I",
        ORDERS // 5 + 1,
        "Emily",
    )
    (product,) = rows["products"]  # one U row with the new image
    assert (product["Op"], product["product_id"], str(product["price"])) == ("U", 101, "1199.99")
    assert product["stock_quantity"] == 45 and product["product_name"] == "Product 101"
    deleted = [tuple(r.values()) for r in rows["orders"] + rows["order_items"]]
    old = _sqlite(reference, "SELECT * FROM orders WHERE order_id = 1005")
    old += _sqlite(reference, "SELECT *, quantity * price FROM order_items WHERE order_id = 1005")
    assert [r[0] for r in deleted] == ["D"] * len(old) and len(old) == 1 + 4
    assert [_plain(r[1:]) for r in deleted] == [_plain(r) for r in old]  # the whole old rows


def _plain(row: tuple[Any, ...]) -> tuple[str, ...]:
    """Values as text, numbers to two decimals where they have a fraction."""
    out = []
    for value in row:
        if isinstance(value, (float, Decimal)) and value != int(value):
            value = f"{Decimal(str(value)):.2f}"
        out.append(str(value))
    return tuple(out)
