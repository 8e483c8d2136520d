"""The retail lab (seed 004) of ``opendms demo`` on an embedded SQLite database.

``retail.db`` with customers, products, orders and order_items; two tasks from it
(:func:`demo_tasks`): one to a local Parquet lake, one to a second SQLite database.
Both use a selection filter (products) and transformation rules (customers,
order_items); every order reaches both targets. The lab's CDC statements
(:func:`apply_seed_changes`) and DuckDB queries over the lake (:func:`current_query`,
:func:`load_query`) are here too; the command (``opendms.cli.demo_cmd``) runs the tasks
through the task service and prints what they did.
"""

from __future__ import annotations

import random
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from opendms.config import TaskSpec, task_from_dict

SCHEMA = """
CREATE TABLE customers (
  customer_id INT PRIMARY KEY, first_name VARCHAR(50), last_name VARCHAR(50),
  email VARCHAR(100), phone VARCHAR(20), address VARCHAR(200), city VARCHAR(50),
  state VARCHAR(2), zip_code VARCHAR(10), registration_date DATETIME);
CREATE TABLE products (
  product_id INT PRIMARY KEY, product_name VARCHAR(100), category VARCHAR(50),
  price DECIMAL(10,2), stock_quantity INT, description TEXT);
CREATE TABLE orders (
  order_id INT PRIMARY KEY, customer_id INT REFERENCES customers(customer_id),
  order_date DATETIME, total_amount DECIMAL(10,2), status VARCHAR(20));
CREATE TABLE order_items (
  item_id INT PRIMARY KEY, order_id INT REFERENCES orders(order_id),
  product_id INT REFERENCES products(product_id), quantity INT, price DECIMAL(10,2));
CREATE INDEX orders_customer ON orders(customer_id);
CREATE INDEX order_items_order ON order_items(order_id);
"""

FIRST = ["John", "Jane", "Robert", "Sarah", "Michael", "Emma", "Luis", "Aiko", "Zoë", "Omar"]
LAST = ["Doe", "Smith", "Johnson", "Williams", "Brown", "García", "Müller", "Tanaka", "Okafor"]
CITIES = [("Seattle", "WA"), ("Portland", "OR"), ("San Francisco", "CA"), ("Denver", "CO")]
CATEGORIES = ["Electronics", "Home Appliances", "Sportswear", "Books", "Garden"]
STATUSES = ["Delivered", "Shipped", "Processing", "Cancelled"]
EPOCH = datetime(2022, 1, 1)


def _customers(rng: random.Random, n: int) -> list[tuple[Any, ...]]:
    rows = []
    for i in range(1, n + 1):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        city, state = rng.choice(CITIES)
        when = EPOCH + timedelta(minutes=rng.randrange(525_600))
        rows.append(
            (
                i,
                first,
                last,
                f"{first}.{last}{i}@example.com".lower(),
                f"555-{i:07d}",
                f"{rng.randrange(1, 999)} Main St",
                city,
                state,
                f"{rng.randrange(10000, 99999)}",
                when.strftime("%Y-%m-%d %H:%M:%S"),
            )
        )
    return rows


def _products(rng: random.Random, n: int) -> list[tuple[Any, ...]]:
    rows = []
    for i in range(101, 101 + n):
        category = "Discontinued" if i % 20 == 0 else rng.choice(CATEGORIES)
        price = f"{rng.randrange(199, 199_999) / 100:.2f}"
        rows.append((i, f"Product {i}", category, price, rng.randrange(0, 500), f"About {i}"))
    return rows


def _orders(
    rng: random.Random, n: int, customers: int, products: list[tuple[Any, ...]]
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    orders, items, item_id = [], [], 10001
    for oid in range(1001, 1001 + n):
        total = 0
        for _ in range(rng.randrange(1, 5)):
            product = rng.choice(products)
            qty = rng.randrange(1, 4)
            cents = round(float(product[3]) * 100)
            total += cents * qty
            items.append((item_id, oid, product[0], qty, f"{cents / 100:.2f}"))
            item_id += 1
        when = EPOCH + timedelta(days=365, minutes=rng.randrange(525_600))
        orders.append(
            (
                oid,
                rng.randrange(1, customers + 1),
                when.strftime("%Y-%m-%d %H:%M:%S"),
                f"{total / 100:.2f}",
                rng.choice(STATUSES),
            )
        )
    return orders, items


def build_retail(path: Path, orders: int, seed: int = 4) -> dict[str, int]:
    """Create the retail database at ``path`` (replacing it); returns row counts."""
    path.unlink(missing_ok=True)
    rng = random.Random(seed)
    customers = max(orders // 5, 5)
    products = _products(rng, 400)
    order_rows, item_rows = _orders(rng, orders, customers, products)
    tables = {
        "customers": _customers(rng, customers),
        "products": products,
        "orders": order_rows,
        "order_items": item_rows,
    }
    with sqlite3.connect(path) as conn:
        conn.executescript(SCHEMA)
        for name, rows in tables.items():
            marks = ", ".join("?" * len(rows[0]))
            conn.executemany(f"INSERT INTO {name} VALUES ({marks})", rows)
    return {name: len(rows) for name, rows in tables.items()}


MAPPINGS: dict[str, Any] = {
    "rules": [
        {
            "rule-type": "selection",
            "rule-id": "1",
            "rule-name": "retail",
            "object-locator": {"schema-name": "main", "table-name": "%"},
            "rule-action": "include",
        },
        {
            "rule-type": "selection",
            "rule-id": "2",
            "rule-name": "active-products",
            "object-locator": {"schema-name": "main", "table-name": "products"},
            "rule-action": "include",
            "filters": [
                {
                    "filter-type": "source",
                    "column-name": "category",
                    "filter-conditions": [{"filter-operator": "noteq", "value": "Discontinued"}],
                }
            ],
        },
        {
            "rule-type": "transformation",
            "rule-id": "3",
            "rule-name": "drop-phone",
            "rule-target": "column",
            "object-locator": {
                "schema-name": "main",
                "table-name": "customers",
                "column-name": "phone",
            },
            "rule-action": "remove-column",
        },
        {
            "rule-type": "transformation",
            "rule-id": "4",
            "rule-name": "line-total",
            "rule-target": "column",
            "object-locator": {"schema-name": "main", "table-name": "order_items"},
            "rule-action": "add-column",
            "value": "line_total",
            "expression": "$quantity * $price",
            "data-type": {"type": "numeric", "precision": 12, "scale": 2},
        },
    ]
}


def _task(name: str, source: str, target: str, settings: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": name,
        "source": source,
        "target": {"url": target, "settings": settings} if settings else target,
        "migration_type": "full-load-and-cdc",
        "table_mappings": MAPPINGS,
        "task_settings": {"FullLoadSettings": {"TargetTablePrepMode": "DROP_AND_CREATE"}},
    }
    return spec


def demo_tasks(db: Path, lake: Path, copy: Path) -> list[TaskSpec]:
    """The demo's two tasks from ``db``: to the Parquet lake at ``lake`` (absolute) and
    to the SQLite database ``copy``."""
    tasks = [
        _task(
            "retail-to-lake",
            f"sqlite:///{db}",
            f"file://{lake}",
            "DataFormat=parquet;maxFileSize=131072;timestampColumnName=extracted_at;"
            "includeOpForFullLoad=true",
        ),
        _task("retail-to-sqlite", f"sqlite:///{db}", f"sqlite:///{copy}"),
    ]
    return [task_from_dict(spec_dict, where="demo") for spec_dict in tasks]


def apply_seed_changes(db: Path) -> int:
    """The lab's CDC test statements: a new customer, a product price update and a
    deleted order (with its items). Returns the new customer's id."""
    with sqlite3.connect(db) as conn:
        new_id = int(conn.execute("SELECT max(customer_id) + 1 FROM customers").fetchone()[0])
        conn.execute(
            "INSERT INTO customers VALUES (?, 'Emily', 'Davis', 'emily.d@example.com', "
            "'555-345-6789', '303 Maple Dr', 'Chicago', 'IL', '60601', '2023-02-15 13:40:00')",
            (new_id,),
        )
        conn.execute(
            "UPDATE products SET price = 1199.99, stock_quantity = 45 WHERE product_id = 101"
        )
        conn.execute("DELETE FROM order_items WHERE order_id = 1005")
        conn.execute("DELETE FROM orders WHERE order_id = 1005")
    conn.close()
    return new_id


ORDERS_BY_STATUS = "SELECT status, count(*) AS orders, sum(total_amount) AS total"


def current_query(table_dir: Path, key: str, select: str) -> str:
    """DuckDB SQL for a lake table as it is now: its LOAD and CDC files folded by Op.

    The latest row of each key wins (LOAD files first, then CDC files in name order,
    which is commit order, and rows in file order); a key whose latest row is a
    ``D`` is gone. ``select`` is the query's SELECT list over those rows."""
    files = (
        f"SELECT *, regexp_extract(filename, '[^/]+$') AS file FROM read_parquet("
        f"'{table_dir}/**/*.parquet', filename = true, file_row_number = true, "
        "union_by_name = true)"
    )
    order = "regexp_matches(file, '^[0-9]{8}-[0-9]{9}[.]') DESC, file DESC, file_row_number DESC"
    rank = f"row_number() OVER (PARTITION BY {key} ORDER BY {order})"
    latest = f"SELECT * FROM files QUALIFY {rank} = 1"
    tail = "FROM latest WHERE Op <> 'D' GROUP BY ALL ORDER BY ALL"
    return f"WITH files AS ({files}), latest AS ({latest}) {select} {tail}"


def load_query(table_dir: Path, select: str) -> str:
    """DuckDB SQL over a lake table's full-load (LOAD) files only."""
    return f"{select} FROM '{table_dir}/*LOAD*.parquet' GROUP BY ALL ORDER BY ALL"
