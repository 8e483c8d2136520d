"""The change-record envelope: transactions shaped as each decoder builds them become
exact JSON, which reads back equal, validates against the package's JSON Schema, gets
unique ordered ids and one fixed Arrow form."""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

import jsonschema
import pyarrow as pa
import pytest

from opendms.changes import (
    LSN,
    UNCHANGED,
    BinlogPosition,
    Change,
    ColumnChange,
    Op,
    SeqPosition,
    TableChange,
    Transaction,
    row_change,
)
from opendms.envelope import (
    ARROW_SCHEMA,
    ChangeRecord,
    from_json,
    json_schema,
    ordered_position,
    record_id,
    record_text,
    records_of,
    sortable_position,
    to_arrow,
    to_json,
    value_from_json,
    value_json,
)
from opendms.errors import DataError
from opendms.model import Column, Kind, T, Table

PG_TIME = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
DOC_COLS = ("id", "title", "body")


def _pg_txn() -> Transaction:
    """A PostgreSQL transaction as pgoutput decodes it: text values, an unchanged TOAST
    column, a delete by key, a relation message restating the columns, a TRUNCATE."""
    table = Table("public", "docs", tuple(Column(c, T(Kind.STRING)) for c in DOC_COLS))
    return Transaction(
        745,
        PG_TIME,
        LSN.parse("0/16B3748"),
        [
            Change(Op.DDL, "public", "docs", table_ddl=TableChange("columns", table), stat=""),
            row_change(Op.INSERT, "public", "docs", DOC_COLS, ("1", "hello", "long text")),
            row_change(
                Op.UPDATE, "public", "docs", DOC_COLS, ("1", "hi", UNCHANGED), ("id",), ("1",)
            ),
            row_change(Op.DELETE, "public", "docs", (), (), ("id",), ("1",)),
            Change(Op.TRUNCATE, "public", "docs"),
        ],
    )


ITEM_COLS = ("id", "price", "raw", "at", "day")
OLD = (3, Decimal("19.99"), b"\x00\xff", datetime(2024, 1, 2, 3, 4, 5, 123456), date(2024, 2, 29))
NEW = (4, Decimal("-0.50"), b"", datetime(2024, 1, 2, 3, 4, 6), None)


def _mysql_txn() -> Transaction:
    """A MySQL/MariaDB transaction as the binlog decoder builds it: an update (key
    change) with the FULL old row image, then an ALTER TABLE."""
    return Transaction(
        9,
        datetime(2024, 5, 1, 14, 0, 0, tzinfo=UTC),
        BinlogPosition.parse("mysql-bin.000003:1234@0-1-42"),
        [
            Change(
                Op.UPDATE,
                "shop",
                "items",
                ITEM_COLS,
                NEW,
                ("id",),
                (3,),
                old_columns=ITEM_COLS,
                old_values=OLD,
            ),
            Change(
                Op.DDL,
                "shop",
                "items",
                ddl=(
                    ColumnChange("add", "note", T(Kind.STRING), nullable=False),
                    ColumnChange("rename", "day", new_name="sold_on"),
                    ColumnChange("alter_type", "price", T(Kind.DECIMAL, precision=12, scale=3)),
                    ColumnChange("drop", "raw"),
                ),
            ),
        ],
    )


def _sqlite_txn(seq: int, xid: int) -> Transaction:
    """A SQLite transaction (python values; the insert carries no key columns)."""
    return Transaction(
        xid,
        datetime(2024, 5, 1, 15, 30),  # naive: UTC
        SeqPosition(seq),
        [
            row_change(Op.INSERT, "main", "items", ("id", "name"), (7, "seven")),
            Change(
                Op.DDL,
                "main",
                "notes",
                table_ddl=TableChange(
                    "create",
                    Table("main", "notes", (Column("id", T(Kind.INT64), nullable=False),)),
                ),
            ),
            Change(
                Op.DDL,
                "main",
                "old",
                table_ddl=TableChange("rename", new_schema="main", new_name="older"),
            ),
            Change(Op.DDL, "main", "gone", table_ddl=TableChange("drop")),
        ],
    )


def _key_of(schema: str, table: str) -> tuple[str, ...]:
    return {"items": ("id",)}.get(table, ())


PG_COMMON = {
    "schema": "public",
    "table": "docs",
    "commit_time": "2024-05-01T12:00:00.123456Z",
    "position": "0/16B3748",
    "transaction_id": "745",
}


def _pg(op: str, seq: int, **members: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "key": {},
        "before": None,
        "after": None,
        "unchanged_columns": [],
        "ddl": None,
    }
    return {"op": op, **PG_COMMON, **base, "sequence": seq, **members}


def _ordered(data: dict[str, Any]) -> list[tuple[str, Any]]:
    return list(data.items())


# -- records_of and the JSON of each kind of change -----------------------------------


def test_postgres_insert_toast_update_delete_truncate() -> None:
    records = records_of(_pg_txn())
    assert [to_json(r) for r in records] == [
        _pg("I", 1, after={"id": "1", "title": "hello", "body": "long text"}),
        _pg(
            "U",
            2,
            key={"id": "1"},
            before={"id": "1"},
            after={"id": "1", "title": "hi"},
            unchanged_columns=["body"],
        ),
        _pg("D", 3, key={"id": "1"}, before={"id": "1"}),
        _pg("T", 4),
    ]
    # the relation message (index 0) made no record; members come in one fixed order
    assert list(to_json(records[0])) == [
        "op",
        "schema",
        "table",
        "key",
        "before",
        "after",
        "unchanged_columns",
        "commit_time",
        "position",
        "transaction_id",
        "sequence",
        "ddl",
    ]


def test_key_of_names_the_insert_key() -> None:
    records = records_of(_pg_txn(), lambda s, t: ("id",))
    assert [r.key for r in records] == [{"id": "1"}, {"id": "1"}, {"id": "1"}, {}]


def test_mysql_full_image_update_and_ddl() -> None:
    records = records_of(_mysql_txn(), _key_of)
    common = {
        "schema": "shop",
        "table": "items",
        "unchanged_columns": [],
        "commit_time": "2024-05-01T14:00:00.000000Z",
        "position": "mysql-bin.000003:1234@0-1-42",
        "transaction_id": "9",
    }
    assert [to_json(r) for r in records] == [
        {
            "op": "U",
            **common,
            "key": {"id": 4},  # the key after the change
            "before": {
                "id": 3,
                "price": {"$decimal": "19.99"},
                "raw": {"$binary": "AP8="},
                "at": {"$timestamp": "2024-01-02T03:04:05.123456"},
                "day": {"$date": "2024-02-29"},
            },
            "after": {
                "id": 4,
                "price": {"$decimal": "-0.50"},
                "raw": {"$binary": ""},
                "at": {"$timestamp": "2024-01-02T03:04:06"},
                "day": None,
            },
            "sequence": 0,
            "ddl": None,
        },
        {
            "op": "DDL",
            **common,
            "key": {},
            "before": None,
            "after": None,
            "sequence": 1,
            "ddl": "add column note string NOT NULL; rename column day to sold_on; "
            "alter column price type decimal(12,3); drop column raw",
        },
    ]
    assert records[0].before == dict(zip(ITEM_COLS, OLD, strict=True))
    assert records[0].after == dict(zip(ITEM_COLS, NEW, strict=True))


def test_mysql_delete_keeps_full_old_row_and_narrows_key() -> None:
    change = Change(
        Op.DELETE,
        "shop",
        "items",
        key_columns=ITEM_COLS,
        key=OLD,
        old_columns=ITEM_COLS,
        old_values=OLD,
    )
    txn = Transaction(10, PG_TIME, BinlogPosition.parse("mysql-bin.000003:2000"), [change])
    (record,) = records_of(txn, _key_of)
    assert (record.op, record.key, record.after) == ("D", {"id": 3}, None)
    assert record.before == dict(zip(ITEM_COLS, OLD, strict=True))
    (whole,) = records_of(txn)  # without key_of: the change's key columns (all of them)
    assert whole.key == whole.before


def test_sqlite_insert_and_table_ddl() -> None:
    records = records_of(_sqlite_txn(1714577400000006, 1714577400000003), _key_of)
    assert [(r.op, r.table, r.sequence, r.key, r.after, r.ddl) for r in records] == [
        ("I", "items", 0, {"id": 7}, {"id": 7, "name": "seven"}, None),
        ("DDL", "notes", 1, {}, None, "create table (id int64 NOT NULL)"),
        ("DDL", "old", 2, {}, None, "rename table to main.older"),
        ("DDL", "gone", 3, {}, None, "drop table"),
    ]
    assert {(r.commit_time, r.position, r.transaction_id) for r in records} == {
        ("2024-05-01T15:30:00.000000Z", "1714577400000006", "1714577400000003")
    }


def test_undecodable_change_raises_data_error_naming_column() -> None:
    bad = Change(Op.INSERT, "main", "items", ("id",), ("x",), error="column id: not an integer")
    txn = Transaction(1, PG_TIME, SeqPosition(5), [bad])
    with pytest.raises(DataError, match=r"table main.items: column id: not an integer") as info:
        records_of(txn)
    assert info.value.column == "id"


# -- values and round trips ---------------------------------------------------------------


def _interval(months: int, days: int, nanoseconds: int) -> pa.MonthDayNano:
    # The stubs declare a NamedTuple; at runtime MonthDayNano is built from one sequence.
    return pa.MonthDayNano([months, days, nanoseconds])  # type: ignore[call-arg, arg-type]


def _all_records() -> list[ChangeRecord]:
    txns = [_pg_txn(), _mysql_txn(), _sqlite_txn(20, 19)]
    return [r for txn in txns for r in records_of(txn, _key_of)]


def test_round_trip_through_json_text() -> None:
    records = _all_records()
    assert len(records) == 10
    back = [from_json(json.loads(record_text(r))) for r in records]
    assert back == records


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (None, None),
        (True, True),
        (-9223372036854775808, -9223372036854775808),
        (0.1 + 0.2, 0.30000000000000004),
        (5e-324, 5e-324),
        ("emoji 😀 'q\" \\", "emoji 😀 'q\" \\"),
        (float("inf"), {"$float": "Infinity"}),
        (float("-inf"), {"$float": "-Infinity"}),
        (b"\\", {"$binary": "XA=="}),
        (
            Decimal("12345678901234567890.0123456789"),
            {"$decimal": "12345678901234567890.0123456789"},
        ),
        (Decimal("-1E-10"), {"$decimal": "-0.0000000001"}),
        (date(1000, 1, 1), {"$date": "1000-01-01"}),
        (time(12, 34, 56, 789000), {"$time": "12:34:56.789000"}),
        (time(0, 0), {"$time": "00:00:00"}),
        (datetime(9999, 12, 31, 23, 59, 59, 999999), {"$timestamp": "9999-12-31T23:59:59.999999"}),
        (datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), {"$timestamp": "2024-01-02T03:04:05+00:00"}),
        (_interval(14, -3, -45000500000000), {"$interval": "P14M-3DT-45000.5S"}),
        (_interval(0, 0, 1), {"$interval": "P0M0DT0.000000001S"}),
        ([1, None, [b"\x01"]], [1, None, [{"$binary": "AQ=="}]]),
    ],
)
def test_value_forms(value: Any, encoded: Any) -> None:
    assert value_json(value) == encoded
    back = value_from_json(json.loads(json.dumps(encoded)))
    assert back == value and type(back) is type(value)
    value_schema = {"$defs": json_schema()["$defs"], "$ref": "#/$defs/value"}
    jsonschema.Draft202012Validator(value_schema).validate(encoded)


def test_nan_round_trips() -> None:
    assert value_json(float("nan")) == {"$float": "NaN"}
    assert math.isnan(value_from_json({"$float": "NaN"}))


def test_value_without_json_form_is_a_data_error() -> None:
    record = ChangeRecord(
        "I",
        "main",
        "items",
        "2024-05-01T15:30:00.000000Z",
        "1",
        "1",
        0,
        after={"id": 1, "meta": {"a": 1}},
    )
    with pytest.raises(DataError, match=r"table main.items: column meta: a dict value has no JSON"):
        to_json(record)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"op": "X"}, "op 'X' is none of I, U, D, T, DDL"),
        ({"sequence": "1"}, "member sequence is missing or not a int"),
        ({"sequence": True}, "member sequence is missing or not a int"),
        ({"position": None}, "member position is missing or not a str"),
        ({"after": [1]}, "member after is not an object"),
        ({"after": {"raw": {"$binary": "!!"}}}, r"member after: \$binary '!!' is malformed"),
        ({"key": {"id": {"$nope": "1"}}}, r"member key: '\$nope' with a str is not a tagged"),
        (
            {"key": {"id": {"$date": "1", "$time": "2"}}},
            "member key: a tagged value has one member",
        ),
        ({"ddl": 5}, "member ddl is not a string"),
    ],
)
def test_malformed_json_names_the_member(change: dict[str, Any], message: str) -> None:
    good = to_json(_all_records()[0])
    with pytest.raises(DataError, match=f"table public.docs: {message}"):
        from_json({**good, **change})
    with pytest.raises(DataError, match="a change record is a JSON object, not list"):
        from_json([good])


# -- JSON Schema ------------------------------------------------------------------------


def test_every_record_validates_against_the_schema() -> None:
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    validator = jsonschema.Draft202012Validator(schema)
    for record in _all_records():
        assert list(validator.iter_errors(to_json(record))) == []


@pytest.mark.parametrize(
    "change",
    [
        {"op": "I", "before": {"id": "1"}},  # an insert has no old row
        {"op": "D", "after": {"id": "1"}},
        {"op": "T", "key": {"id": "1"}},
        {"op": "DDL", "ddl": None},
        {"commit_time": "2024-05-01 12:00:00"},
        {"after": {"id": {"$binary": "not base64"}}},
        {"after": {"id": {"$decimal": "1e5"}}},
        {"after": {"id": {}}},
        {"sequence": -1},
        {"extra": 1},
    ],
)
def test_schema_rejects_malformed_records(change: dict[str, Any]) -> None:
    good = to_json(_all_records()[0])
    validator = jsonschema.Draft202012Validator(json_schema())
    assert validator.is_valid(good)
    assert not validator.is_valid({**good, **change})


# -- dedup ids --------------------------------------------------------------------------


def _at(position: str, sequence: int) -> ChangeRecord:
    return ChangeRecord("T", "s", "t", "2024-05-01T12:00:00.000000Z", position, "1", sequence)


def test_record_ids_per_position_kind() -> None:
    assert record_id(_at("16/B374D848", 3)) == "00000016B374D848-0000000003"
    assert record_id(_at("mysql-bin.000003:1234@0-1-42", 0)) == (
        "0000000003.00000000000000001234-0000000000"
    )
    assert record_id(_at("1714577400000006", 12)) == "00001714577400000006-0000000012"
    assert record_id(_at("somewhere else", 1)) == "somewhere else-0000000001"


@pytest.mark.parametrize(
    "positions",
    [
        ["0/9", "0/10", "0/FF", "1/0", "A/0"],  # as text "0/10" < "0/9"
        ["bin.9:900", "bin.9:1000", "bin.10:4", "bin.100:4@0-1-7"],
        ["9", "10", "100", "1714577400000006"],
    ],
)
def test_record_ids_are_unique_and_sort_in_commit_order(positions: list[str]) -> None:
    records = [_at(p, s) for p in positions for s in (0, 2, 10)]
    ids = [record_id(r) for r in records]
    assert len(set(ids)) == len(ids)
    assert sorted(ids) == ids


def test_record_ids_of_captured_batch() -> None:
    txns = [_pg_txn(), _pg_txn()]
    txns[1].end = LSN.parse("0/16B3800")
    ids = [record_id(r) for txn in txns for r in records_of(txn)]
    assert ids == [
        f"00000000016B{end}-000000000{seq}" for end in ("3748", "3800") for seq in (1, 2, 3, 4)
    ]


# -- Arrow ------------------------------------------------------------------------------


def test_arrow_form() -> None:
    records = _all_records()
    batch = to_arrow(records)
    assert batch.schema == ARROW_SCHEMA
    assert batch.schema.names == [
        "op",
        "schema",
        "table",
        "commit_time",
        "position",
        "transaction_id",
        "sequence",
        "key",
        "before",
        "after",
        "unchanged_columns",
        "ddl",
    ]
    assert batch.schema.field("commit_time").type == pa.timestamp("us", tz="UTC")
    rows = batch.to_pylist()
    assert rows[1] == {
        "op": "U",
        "schema": "public",
        "table": "docs",
        "commit_time": PG_TIME,
        "position": "0/16B3748",
        "transaction_id": "745",
        "sequence": 2,
        "key": '{"id":"1"}',
        "before": '{"id":"1"}',
        "after": '{"id":"1","title":"hi"}',
        "unchanged_columns": ["body"],
        "ddl": None,
    }
    assert [r["op"] for r in rows] == ["I", "U", "D", "T", "U", "DDL", "I", "DDL", "DDL", "DDL"]
    for row, record in zip(rows, records, strict=True):
        wanted = to_json(record)
        for name in ("key", "before", "after"):
            assert (None if row[name] is None else json.loads(row[name])) == wanted[name]
    assert rows[4]["commit_time"] == datetime(2024, 5, 1, 14, 0, tzinfo=UTC)
    assert to_arrow([]).num_rows == 0 and to_arrow([]).schema == ARROW_SCHEMA


def test_record_ids_of_positions_that_do_not_sort_keep_their_text() -> None:
    """A DynamoDB Streams position holds ``/`` (its shard ids) and is no LSN."""
    text = "2026-12-04T23:40:01.123Z|items/shardId-0001=42"
    assert sortable_position(text) == text and ordered_position(text) is None
    assert ordered_position("16/B374D848") == "00000016B374D848"
    assert ordered_position("42") == f"{42:020d}"


def test_changes_with_their_own_positions_keep_their_ids_in_any_grouping() -> None:
    """SQLite's capture makes transactions of what it reads at once: after a restart the
    same changes may come grouped otherwise, and each keeps its record id."""
    at = datetime(2024, 5, 1, 12, tzinfo=UTC)
    changes = [Change(Op.INSERT, "main", "t", ("id",), (i,), origin=100 + i) for i in range(4)]
    whole = Transaction(100, at, SeqPosition(103), changes)
    split = [
        Transaction(100, at, SeqPosition(101), changes[:2]),
        Transaction(102, at, SeqPosition(103), changes[2:]),
    ]
    ids = [record_id(r) for r in records_of(whole)]
    assert ids == [record_id(r) for txn in split for r in records_of(txn)]
    assert ids[0] == f"{100:020d}-0000000000"
    assert [r.position for r in records_of(whole)] == ["100", "101", "102", "103"]
