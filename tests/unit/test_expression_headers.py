"""DMS header columns ($AR_H_*), metadata ($AR_M_*) and operation_indicator: their values
in a full load and in CDC (a hand-built Transaction through the Transformer), and
DataTruncationErrorPolicy for CDC changes."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pyarrow as pa
import pytest

from opendms.changes import LSN, UNCHANGED, Change, Op, SeqPosition, Transaction
from opendms.engine.transform import Transformer
from opendms.mapping import TablePlan, evaluate_outputs, parse_table_mappings
from opendms.model import Column, ColumnType, Kind, Table

SRC = Table(
    "app",
    "items",
    (Column("id", ColumnType(Kind.INT64)), Column("name", ColumnType(Kind.STRING))),
    primary_key=("id",),
)
HEADERS = {
    "op": "$AR_H_OPERATION",
    "commit_ts": "$AR_H_COMMIT_TIMESTAMP",
    "ts": "$AR_H_TIMESTAMP",
    "pos": "$AR_H_STREAM_POSITION",
    "seq": "$AR_H_CHANGE_SEQ",
    "xid": "$AR_H_TRANSACTION_ID",
    "usr": "$AR_H_USER",
    "sch": "$AR_M_SOURCE_SCHEMA",
    "tbl": "$AR_M_SOURCE_TABLE_NAME",
    "col": "$AR_M_SOURCE_COLUMN_NAME",
    "flag": "operation_indicator('D', 'U', 'I')",
}


def add(rid: int, name: str, expression: str, dms_type: dict[str, Any]) -> dict[str, Any]:
    return {
        "rule-type": "transformation",
        "rule-id": str(rid),
        "rule-name": str(rid),
        "rule-action": "add-column",
        "rule-target": "column",
        "object-locator": {"schema-name": "app", "table-name": "items"},
        "value": name,
        "expression": expression,
        "data-type": dms_type,
    }


def header_plan() -> TablePlan:
    rules = [
        add(i, name, expr, {"type": "string", "length": 60})
        for i, (name, expr) in enumerate(HEADERS.items(), start=1)
    ]
    return parse_table_mappings({"rules": rules}).plan(SRC)


def test_full_load_values() -> None:
    p = header_plan()
    before = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    batch = pa.record_batch({"id": pa.array([1, 2], pa.int64()), "name": ["a", "b"]})
    row = evaluate_outputs(batch, p).to_pylist()[0]
    assert row["op"] == "INSERT"
    assert row["flag"] == "I"
    assert row["pos"] == row["seq"] == row["xid"] == row["usr"] == ""
    assert row["sch"] == "app" and row["tbl"] == "items" and row["col"] is None
    stamp = dt.datetime.fromisoformat(row["commit_ts"])
    assert abs((stamp - before).total_seconds()) < 60
    assert row["ts"] == row["commit_ts"]


def _txn(*changes: Change, end: Any = None, xid: int = 777) -> Transaction:
    commit = dt.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=dt.UTC)
    return Transaction(xid, commit, end or LSN.parse("16/B374D848"), list(changes))


def test_cdc_values_from_the_change_and_its_transaction() -> None:
    p = header_plan()
    transformer = Transformer({("app", "items"): p})
    insert = Change(Op.INSERT, "app", "items", ("id", "name"), (1, "a"))
    update = Change(Op.UPDATE, "app", "items", ("id", "name"), (1, "b"), ("id",), (1,))
    out = transformer(_txn(insert, update)).changes
    rows = [dict(zip(c.columns, c.values, strict=True)) for c in out]
    assert [r["op"] for r in rows] == ["INSERT", "UPDATE"]
    assert [r["flag"] for r in rows] == ["I", "U"]
    for r in rows:
        assert r["commit_ts"] == r["ts"] == "2024-05-06 07:08:09.123456"
        assert r["pos"] == "16/B374D848"
        assert r["xid"] == "777"
        assert r["usr"] is None  # PostgreSQL, MySQL and SQLite do not say who
        assert (r["sch"], r["tbl"], r["col"]) == ("app", "items", None)
        assert re.fullmatch(r"2024050607080912\d{19}", r["seq"])
    assert rows[0]["seq"] < rows[1]["seq"]  # increasing per change


def test_cdc_sqlite_change_table_has_no_transaction_id() -> None:
    p = header_plan()
    insert = Change(Op.INSERT, "app", "items", ("id", "name"), (1, "a"))
    out = Transformer({("app", "items"): p})(_txn(insert, end=SeqPosition(42), xid=40))
    row = dict(zip(out.changes[0].columns, out.changes[0].values, strict=True))
    assert row["xid"] is None and row["pos"] == "42"


def test_operation_indicator_keeps_a_deleted_row_and_flags_it() -> None:
    p = header_plan()
    delete = Change(Op.DELETE, "app", "items", key_columns=("id",), key=(1,))
    (flagged,) = Transformer({("app", "items"): p})(_txn(delete)).changes
    assert flagged.op is Op.UPDATE
    assert flagged.key_columns == ("id",) and flagged.key == (1,)
    row = dict(zip(flagged.columns, flagged.values, strict=True))
    assert row["flag"] == "D" and row["op"] == "DELETE"
    assert row["name"] is UNCHANGED and row["id"] is UNCHANGED
    assert row["sch"] is UNCHANGED  # metadata columns do not change


def test_without_operation_indicator_a_delete_is_a_delete() -> None:
    rules = [add(1, "op", "$AR_H_OPERATION", {"type": "string", "length": 10})]
    p = parse_table_mappings({"rules": rules}).plan(SRC)
    delete = Change(Op.DELETE, "app", "items", key_columns=("id",), key=(1,))
    (out,) = Transformer({("app", "items"): p})(_txn(delete)).changes
    assert out.op is Op.DELETE and out.key == (1,)


@pytest.mark.parametrize(("keep", "expected"), [(True, ["abc"]), (False, [])])
def test_cdc_truncation_goes_to_the_policy(keep: bool, expected: list[str]) -> None:
    rules = [add(1, "short", "$name || 'cdef'", {"type": "string", "length": 3})]
    p = parse_table_mappings({"rules": rules}).plan(SRC)
    seen: list[tuple[str, str]] = []

    def policy(change: Change, column: str, reason: str) -> bool:
        seen.append((column, reason))
        return keep

    insert = Change(Op.INSERT, "app", "items", ("id", "name"), (1, "ab"))
    out = Transformer({("app", "items"): p}, on_truncation=policy)(_txn(insert)).changes
    assert [dict(zip(c.columns, c.values, strict=True))["short"] for c in out] == expected
    assert seen == [("short", "column short: value truncated to 3 characters")]
