"""``opendms demo``: the retail lab (seed 004) of :mod:`opendms.demo`, run through the task
service: two tasks migrate an embedded retail database to a Parquet lake and to SQLite,
the lab's CDC statements change the source, both tasks resume and apply them, and the
lake's change files and DuckDB queries over it are shown."""

from __future__ import annotations

import shlex
import sqlite3
import sys
from pathlib import Path

import pyarrow.parquet as pq

from opendms.cli.ui import RichProgress, console, err_console, stats_table
from opendms.demo import (
    ORDERS_BY_STATUS,
    apply_seed_changes,
    build_retail,
    current_query,
    demo_tasks,
    load_query,
)
from opendms.endpoints.lake.target import CDC_FILE
from opendms.service import TaskService


def run_demo(directory: Path, orders: int, service: TaskService) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    db = directory / "retail.db"
    counts = build_retail(db, orders)
    console.print(f"built {db}: " + ", ".join(f"{n} {k}" for k, n in counts.items()))
    lake = (directory / "lake").resolve()
    copy = directory / "retail-copy.db"
    specs = demo_tasks(db, lake, copy)
    for spec in specs:
        with RichProgress(err_console.is_terminal) as progress:
            result = service.run(spec, progress=progress, fresh=True, assess=False)
        console.print(stats_table(spec.name, result.tables))
        console.print(f"{spec.name}: {result.load.rows:,} rows in {result.load.tables} tables\n")
    new_customer = apply_seed_changes(db)
    console.print(
        f"changed the source (seed 004 CDC statements): new customer {new_customer}, "
        "product 101 price 1199.99, order 1005 and its items deleted"
    )
    for spec in specs:
        # resumes at the saved position, stops once caught up
        result = service.run(spec, assess=False)
        console.print(stats_table(spec.name, result.tables))
    _show_changes(lake, copy, new_customer)
    _explain(lake, copy, service.state_path)


def _show_changes(lake: Path, copy: Path, customer: int) -> None:
    cdc = sorted(p for p in lake.rglob("*.parquet") if CDC_FILE.match(p.name))
    console.print(f"CDC files in the lake ({len(cdc)}), each row's Op and first columns:")
    for path in cdc:
        console.print(f"  {path.relative_to(lake)}", highlight=False)
        for row in pq.read_table(path).to_pylist():
            shown = ", ".join(f"{k}={v}" for k, v in list(row.items())[2:6])
            console.print(f"    {row['Op']}  {shown}", highlight=False, markup=False)
    with sqlite3.connect(copy) as conn:
        name = conn.execute(
            "SELECT first_name || ' ' || last_name FROM customers WHERE customer_id = ?",
            (customer,),
        ).fetchone()
        price = conn.execute("SELECT price FROM products WHERE product_id = 101").fetchone()
        order = conn.execute("SELECT count(*) FROM orders WHERE order_id = 1005").fetchone()
    conn.close()
    console.print(
        f"SQLite copy: customer {customer} = {name[0] if name else None}, "
        f"product 101 price = {price[0] if price else None}, order 1005 rows = {order[0]}\n"
    )


def _explain(lake: Path, copy: Path, state: Path) -> None:
    console.print(f"Parquet lake: {lake}/main/<table>/LOAD00000001.parquet")
    console.print(f"SQLite copy:  {copy}")
    console.print(f"State store:  {state}  (opendms task status; opendms task tables NAME)")
    orders = lake / "main" / "orders"
    queries = [
        (
            "orders now (LOAD and CDC files folded by Op: latest row per key, deletes dropped)",
            current_query(orders, "order_id", ORDERS_BY_STATUS),
        ),
        (
            "orders as the full load found them (LOAD files only)",
            load_query(orders, ORDERS_BY_STATUS),
        ),
    ]
    console.print("Query the lake with DuckDB (SQL, then a command that runs it):")
    for title, sql in queries:
        command = f"import duckdb; print(duckdb.sql({sql!r}))"
        console.print(f"  {title}:", highlight=False, markup=False)
        console.print(f"    {sql}", highlight=False, markup=False, soft_wrap=True)
        console.print(
            f"    {sys.executable} -c {shlex.quote(command)}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
