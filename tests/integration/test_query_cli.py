"""``opendms query`` as a command: each output format (to --out and stdout), --explain
and --analyze, the row counts on stderr, and bad input as one ``error:`` line, exit 2."""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.support.sql import execute

SQL = "SELECT id, name, price, raw FROM s.main.items WHERE id >= 2 ORDER BY id"


@pytest.fixture
def db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    execute(
        url,
        [
            "CREATE TABLE items (id integer PRIMARY KEY, name text, price numeric(8,2), raw blob)",
            "INSERT INTO items VALUES (1, 'a', 1.5, x'00'), (2, 'b,\"c\"', 2.25, x'ff01'), "
            "(3, NULL, NULL, NULL)",
        ],
    )
    return url


def opendms(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [str(Path(sys.executable).parent / "opendms"), "query", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=dict(os.environ))


def test_csv_on_stdout_with_counts_on_stderr(db: str) -> None:
    done = opendms(SQL, "--endpoint", f"s={db}")
    assert done.returncode == 0, done.stderr
    assert list(csv.reader(io.StringIO(done.stdout))) == [
        ["id", "name", "price", "raw"],
        ["2", 'b,"c"', "2.25", base64.b64encode(b"\xff\x01").decode()],
        ["3", "", "", ""],
    ]
    assert done.stderr.splitlines()[0].startswith("2 rows in ")
    assert "s.main.items: 2 rows read in " in done.stderr


def test_jsonl_keeps_exact_values(db: str, tmp_path: Path) -> None:
    out = tmp_path / "a.jsonl"
    done = opendms(SQL, "--endpoint", f"s={db}", "--format", "jsonl", "--out", str(out))
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line, parse_float=Decimal) for line in out.read_text().splitlines()]
    assert lines == [
        {"id": 2, "name": 'b,"c"', "price": Decimal("2.25"), "raw": "/wE="},
        {"id": 3, "name": None, "price": None, "raw": None},
    ]


def test_parquet_keeps_arrow_types(db: str, tmp_path: Path) -> None:
    out = tmp_path / "a.parquet"
    done = opendms(SQL, "--endpoint", f"s={db}", "--format", "parquet", "--out", str(out))
    assert done.returncode == 0, done.stderr
    table = pq.read_table(out)
    assert table.schema.field("raw").type == pa.binary()
    assert table.column("id").to_pylist() == [2, 3]
    assert table.column("raw").to_pylist() == [b"\xff\x01", None]


def test_table_format(db: str) -> None:
    done = opendms(SQL, "--endpoint", f"s={db}", "--format", "table")
    assert done.returncode == 0, done.stderr
    assert 'b,"c"' in done.stdout and "NULL" in done.stdout and "2.25" in done.stdout


def test_explain_reads_nothing_and_analyze_runs(db: str) -> None:
    explained = opendms(SQL + " LIMIT 1", "--endpoint", f"s={db}", "--explain")
    assert explained.returncode == 0, explained.stderr
    assert explained.stdout.splitlines() == [
        "s.main.items (__q0):",
        '  SELECT "id", "name", "price", "raw" FROM "items" WHERE ("id" >= 2)',
        'DuckDB: SELECT id, name, price, raw FROM __q0 AS "items" WHERE id >= 2 '
        "ORDER BY id LIMIT 1",
    ]
    assert explained.stderr == ""
    analyzed = opendms(SQL, "--endpoint", f"s={db}", "--analyze")
    assert analyzed.returncode == 0 and 'WHERE ("id" >= 2)' in analyzed.stderr
    assert "2 rows in" in analyzed.stderr and analyzed.stdout.startswith("id,name")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([SQL, "--endpoint", "x=sqlite:///nowhere.db"], "unknown endpoint 's'"),
        (["SELECT * FROM s.main.nope", "--endpoint", "s={db}"], "table s.main.nope not found"),
        (["SELECT * FRM s.main.items", "--endpoint", "s={db}"], "SQL syntax error"),
        (["SELECT nope FROM s.main.items", "--endpoint", "s={db}"], "nope"),
        (["SELECT 1", "--endpoint", "s"], "expected NAME=URL"),
        ([SQL, "--endpoint", "s={db}", "--key", "s.items=id"], "ENDPOINT.SCHEMA.TABLE="),
        (["SELECT 'a' + 1 AS x FROM s.main.items", "--endpoint", "s={db}"], "query: "),
    ],
)
def test_bad_input_is_one_line_and_exit_2(db: str, args: list[str], message: str) -> None:
    done = opendms(*(a.replace("{db}", db) for a in args))
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: ") and message in done.stderr
    assert len(done.stderr.splitlines()) == 1 and "Traceback" not in done.stderr
