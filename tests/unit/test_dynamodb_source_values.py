"""The DynamoDB source's I/O-free parts: AttributeValues decoded exactly, columns
inferred from items, stream records as changes, positions as text (golden in/out)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from opendms.arrowutil import read_rejections
from opendms.changes import Op
from opendms.endpoints.dynamodb.decode import MismatchError, canonical, json_text, number_text
from opendms.endpoints.dynamodb.infer import table_of
from opendms.endpoints.dynamodb.position import StreamPosition
from opendms.endpoints.dynamodb.records import change_of
from opendms.endpoints.dynamodb.source import to_batch
from opendms.model import ColumnType, Filter, FilterGroup, Kind, ReadPlan

DEC, TEXT, JSON = ColumnType(Kind.DECIMAL), ColumnType(Kind.STRING), ColumnType(Kind.JSON)


@pytest.mark.parametrize(
    ("given", "want"),
    [
        ("1.50", "1.5"),
        ("100", "100"),
        ("1E+3", "1000"),
        ("-0.000001", "-0.000001"),
        ("12345678901234567890.123456789012345678", "12345678901234567890.123456789012345678"),
        (
            "9.9999999999999999999999999999999999999E+125",
            "99999999999999999999999999999999999999" + "0" * 88,
        ),
        ("1E-130", "0." + "0" * 129 + "1"),
        ("0.0", "0"),
    ],
)
def test_numbers_keep_every_digit(given: str, want: str) -> None:
    assert number_text(given) == want
    assert Decimal(number_text(given)) == Decimal(given)


@pytest.mark.parametrize(
    ("value", "want"),
    [
        ({"S": 'é\n"q"'}, '"é\\n\\"q\\""'),
        ({"N": "0.10"}, "0.1"),
        ({"B": b"\x00\xff"}, '"AP8="'),
        ({"BOOL": False}, "false"),
        ({"NULL": True}, "null"),
        ({"M": {"a": {"L": [{"N": "1"}, {"NULL": True}]}}}, '{"a": [1, null]}'),
        ({"SS": ["b", "a"]}, '["b", "a"]'),
        ({"NS": ["2", "1.0"]}, "[2, 1]"),
        ({"BS": [b"\x01"]}, '["AQ=="]'),
    ],
)
def test_json_text_is_exact(value: dict[str, Any], want: str) -> None:
    assert json_text(value) == want


def test_canonical_values_by_column_kind() -> None:
    assert canonical({"N": "7.0"}, DEC) == "7"
    assert canonical({"S": "x"}, TEXT) == "x"
    assert canonical({"N": "7"}, TEXT) == "7"  # a string column takes any value as JSON text
    assert canonical({"S": "x"}, JSON) == '"x"'
    assert canonical({"B": b"\x01"}, ColumnType(Kind.BINARY)) == b"\x01"
    assert canonical({"BOOL": True}, ColumnType(Kind.BOOL)) is True
    assert canonical({"NULL": True}, DEC) is None and canonical(None, DEC) is None
    with pytest.raises(MismatchError, match="a S value in a decimal column"):
        canonical({"S": "x"}, DEC)


def test_columns_are_inferred_key_first_then_by_name() -> None:
    description = {
        "TableName": "t",
        "KeySchema": [
            {"AttributeName": "sk", "KeyType": "RANGE"},
            {"AttributeName": "pk", "KeyType": "HASH"},
        ],
        "AttributeDefinitions": [
            {"AttributeName": "pk", "AttributeType": "B"},
            {"AttributeName": "sk", "AttributeType": "N"},
        ],
        "ItemCount": 3,
    }
    items: list[dict[str, Any]] = [
        {
            "pk": {"B": b"1"},
            "sk": {"N": "1"},
            "z": {"S": "a"},
            "m": {"N": "1"},
            "e": {"NULL": True},
        },
        {
            "pk": {"B": b"2"},
            "sk": {"N": "2"},
            "m": {"S": "x"},
            "_doc": {"M": {"c": {"BOOL": True}}},
        },
        {"pk": {"B": b"3"}, "sk": {"N": "3"}, "z": {"NULL": True}, "l": {"L": []}},
    ]
    table = table_of("dynamodb", description, items)
    assert [(c.name, c.type.kind, c.nullable) for c in table.columns] == [
        ("pk", Kind.BINARY, False),
        ("sk", Kind.DECIMAL, False),
        ("c", Kind.BOOL, True),
        ("e", Kind.JSON, True),
        ("l", Kind.JSON, True),
        ("m", Kind.JSON, True),
        ("z", Kind.STRING, True),
    ]
    assert table.primary_key == ("pk", "sk") and table.estimated_rows == 3


def _record(event: str, **images: Any) -> dict[str, Any]:
    data = {"SequenceNumber": "42", "Keys": {"id": {"N": "1"}}, **images}
    data["ApproximateCreationDateTime"] = datetime(2026, 1, 1, tzinfo=UTC)
    return {"eventName": event, "dynamodb": data}


def test_records_become_changes_with_their_images() -> None:
    description = {
        "TableName": "t",
        "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "N"}],
    }
    table = table_of("dynamodb", description, [{"id": {"N": "1"}, "v": {"N": "2"}}])
    new, old = {"id": {"N": "1"}, "v": {"N": "3"}}, {"id": {"N": "1"}, "v": {"N": "2"}}
    insert = change_of(table, _record("INSERT", NewImage=new), whole=True)
    assert (insert.op, insert.columns, insert.values, insert.key) == (
        Op.INSERT,
        ("id", "v"),
        ("1", "3"),
        (),
    )
    update = change_of(table, _record("MODIFY", NewImage=new, OldImage=old), whole=True)
    assert (
        update.op is Op.UPDATE and update.key == ("1",) and update.before() == {"id": "1", "v": "2"}
    )
    delete = change_of(table, _record("REMOVE", OldImage=old), whole=False)
    assert delete.op is Op.DELETE and delete.values == () and delete.before() == {"id": "1"}
    bad = change_of(
        table, _record("INSERT", NewImage={"id": {"N": "1"}, "v": {"S": "x"}}), whole=False
    )
    assert bad.error == "column v: a S value in a decimal column" and bad.values == ("1", '"x"')
    assert bad.error_column() == "v"


_T = "2026-01-01T00:00:00.000Z"


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("2026-01-01T00:00:00Z", f"{_T}|since={_T}"),  # a CdcStartPosition time
        (f"{_T}|since=2025-12-31T23:58:00.000Z", None),
        (f"{_T}|a.b-c/shardId-2=1100000000017454423009|a.b-c/shardId-1=done", None),
    ],
)
def test_position_text_round_trips(text: str, want: str | None) -> None:
    position = StreamPosition.parse(text)
    assert StreamPosition.parse(str(position)) == position
    if want is not None:
        assert str(position) == want
    else:
        assert sorted(str(position).split("|")) == sorted(text.split("|"))


def test_a_batch_keeps_the_rows_the_filters_pass_and_reports_misfits() -> None:
    description = {
        "TableName": "t",
        "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
    }
    items: list[dict[str, Any]] = [
        {"id": {"S": "a"}, "n": {"N": "1"}},
        {"id": {"S": "b"}, "n": {"S": "oops"}},
        {"id": {"S": "c"}, "_doc": {"M": {"n": {"N": "3"}}}},
    ]
    table = table_of("dynamodb", description, items[:1])
    batch = to_batch(ReadPlan(table, ("id", "n")), items)
    assert batch.to_pylist() == [
        {"id": "a", "n": "1"},
        {"id": "b", "n": None},
        {"id": "c", "n": "3"},
    ]
    assert read_rejections(batch) == [(1, "n", "a S value in a decimal column")]
    only = (FilterGroup("id", (Filter("id", "noteq", ("a",)),)),)
    kept = to_batch(ReadPlan(table, ("id", "n"), filters=only), items)
    assert kept.to_pylist() == [{"id": "b", "n": None}, {"id": "c", "n": "3"}]
    assert read_rejections(kept) == [(0, "n", "a S value in a decimal column")]
