"""The CLI over the public API, on SQLite and a local lake (no server needed)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import duckdb
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


def _count(db: Path, table: str) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


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
    for table in ("customers", "products", "orders", "order_items"):
        assert _count(copy, table) == _count(retail, table)
    code, out = _invoke(tmp_path, "task", "status", "copy")
    assert code == 0 and "stopped" in out and "100%" in out and "full-load" in out
    code, out = _invoke(tmp_path, "task", "tables", "copy")
    assert code == 0 and "Table completed" in out and "2,000" in out and "main.orders" in out
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
        assert _count(copy, "orders") == 2000


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
    assert _count(copy, "orders") == 2000


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
    con = duckdb.connect()
    cats = con.execute(f"SELECT DISTINCT category FROM '{lake}/main/products/*.parquet'").fetchall()
    assert ("Discontinued",) not in cats and len(cats) > 0
    cols = [
        r[0]
        for r in con.execute(f"DESCRIBE SELECT * FROM '{lake}/main/customers/*.parquet'").fetchall()
    ]
    assert "phone" not in cols and "email" in cols
    bad = con.execute(
        f"SELECT count(*) FROM '{lake}/main/order_items/*.parquet' "
        "WHERE line_total <> quantity * price"
    ).fetchone()
    assert bad == (0,)
    with sqlite3.connect(retail) as conn:
        kept = conn.execute(
            "SELECT count(*) FROM products WHERE category <> 'Discontinued'"
        ).fetchone()
    assert con.execute(f"SELECT count(*) FROM '{lake}/main/products/*.parquet'").fetchone() == kept


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
    assert _count(retail, "orders") == 2000


def test_demo(tmp_path: Path) -> None:
    code, out = _invoke(tmp_path, "demo", "--dir", str(tmp_path / "demo"), "--orders", "3000")
    assert code == 0, out
    lake = tmp_path / "demo" / "lake" / "main"
    orders = duckdb.sql(f"SELECT count(*) FROM '{lake}/orders/LOAD00000001.parquet'").fetchall()
    assert orders == [(3000,)]
    # the seed 004 CDC statements deleted order 1005 after the full load
    assert _count(tmp_path / "demo" / "retail-copy.db", "orders") == 2999
    assert "retail-to-lake" in out and "retail-to-sqlite" in out and "duckdb" in out
    copy = sqlite3.connect(tmp_path / "demo" / "retail-copy.db")
    source = sqlite3.connect(tmp_path / "demo" / "retail.db")
    for table, key in (("customers", "customer_id"), ("products", "product_id")):
        want = source.execute(f"SELECT * FROM {table} ORDER BY {key}").fetchall()
        got = copy.execute(f"SELECT * FROM {table} ORDER BY {key}").fetchall()
        if table == "customers":  # the mappings remove the phone column; the full load
            # writes DATETIME text with microseconds, and CDC must do the same
            want = [r[:4] + r[5:-1] + (r[-1] + ".000000",) for r in want]
        else:  # and keep only products that are not discontinued
            want = [r for r in want if r[2] != "Discontinued"]
        assert got == want, table
    assert copy.execute("SELECT price FROM products WHERE product_id = 101").fetchone() == (
        1199.99,
    )
    cdc = duckdb.sql(
        f"SELECT Op, customer_id, first_name FROM '{lake}/customers/2*.parquet'"
    ).fetchall()
    assert cdc == [("I", 601, "Emily")]  # 600 customers for 3000 orders
    deleted = duckdb.sql(f"SELECT Op, order_id FROM '{lake}/orders/2*.parquet'").fetchall()
    assert deleted == [("D", 1005)]
