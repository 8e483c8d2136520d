"""The DynamoDB value codec: canonical values as AttributeValues and back, exactly."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

from opendms.endpoints.dynamodb.codec import (
    MAX_ITEM_BYTES,
    CodecError,
    decode,
    encode,
    item_size,
    number_text,
    text_of,
)
from opendms.model import ColumnType, Kind

T = ColumnType


def _interval(months: int, days: int, nanos: int) -> Any:
    # the stubs declare a NamedTuple; at runtime MonthDayNano is built from one sequence
    return pa.MonthDayNano([months, days, nanos])  # type: ignore[call-arg,arg-type]


UTC = dt.UTC

ENCODED: list[tuple[ColumnType, Any, Any]] = [
    (T(Kind.INT64), 2**63 - 1, {"N": "9223372036854775807"}),
    (T(Kind.INT16), -7, {"N": "-7"}),
    (
        T(Kind.DECIMAL, precision=38, scale=9),
        Decimal("12345678901234567890.123456789"),
        {"N": "12345678901234567890.123456789"},
    ),
    (T(Kind.DECIMAL, precision=12, scale=2), Decimal("1234.50"), {"N": "1234.50"}),
    (T(Kind.DECIMAL, precision=12, scale=0), Decimal("1E+2"), {"N": "100"}),
    (T(Kind.DECIMAL, precision=20, scale=10), Decimal("1E-7"), {"N": "0.0000001"}),
    (T(Kind.DECIMAL, precision=10, scale=2), Decimal("0.00"), {"N": "0"}),
    (
        T(Kind.DECIMAL),
        "-712345678901234567890.1234567890123456789",
        {"S": "-712345678901234567890.1234567890123456789"},
    ),
    (T(Kind.FLOAT64), 0.1, {"N": "0.1"}),
    (T(Kind.FLOAT64), 1e16, {"N": "10000000000000000"}),
    (T(Kind.FLOAT64), 2.5e-5, {"N": "0.000025"}),
    (T(Kind.BOOL), True, {"BOOL": True}),
    (T(Kind.BINARY), b"\x00\xff", {"B": b"\x00\xff"}),
    (T(Kind.STRING), "héllo 😀", {"S": "héllo 😀"}),
    (
        T(Kind.UUID),
        "6f1c2a34-9b7e-4d21-8c55-0e4f3a2b1c9d",
        {"S": "6f1c2a34-9b7e-4d21-8c55-0e4f3a2b1c9d"},
    ),
    (T(Kind.DATE), dt.date(2021, 3, 1), {"S": "2021-03-01"}),
    (T(Kind.TIME), dt.time(12, 30, 0, 500000), {"S": "12:30:00.500000"}),
    (T(Kind.TIMESTAMP), dt.datetime(2021, 3, 1, 12, 30), {"S": "2021-03-01T12:30:00"}),
    (
        T(Kind.TIMESTAMPTZ),
        dt.datetime(2021, 3, 1, 12, 30, 0, 1, tzinfo=UTC),
        {"S": "2021-03-01T12:30:00.000001+00:00"},
    ),
    (T(Kind.INTERVAL), _interval(14, 3, 3_723_500_000_000), {"S": "P14M3DT3723.5S"}),
    (
        T(Kind.JSON),
        '{"a": [1, 2.50, "x", null, true], "b": {"c": 12345678901234567890.5}}',
        {
            "M": {
                "a": {"L": [{"N": "1"}, {"N": "2.50"}, {"S": "x"}, {"NULL": True}, {"BOOL": True}]},
                "b": {"M": {"c": {"N": "12345678901234567890.5"}}},
            }
        },
    ),
    (T(Kind.JSON), "[]", {"L": []}),
    (
        T(Kind.ARRAY, element=T(Kind.INT32)),
        [1, None, 3],
        {"L": [{"N": "1"}, {"NULL": True}, {"N": "3"}]},
    ),
]


@pytest.mark.parametrize(
    ("ctype", "value", "want"), ENCODED, ids=[str(i) for i in range(len(ENCODED))]
)
def test_encode(ctype: ColumnType, value: Any, want: Any) -> None:
    assert encode(ctype, value) == want


def test_null_has_no_attribute() -> None:
    assert encode(T(Kind.STRING), None) is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (math.nan, "cannot be stored"),
        (math.inf, "cannot be stored"),
        (Decimal("NaN"), "cannot be stored"),
        (Decimal("1234567890123456789012345678901234567.89"), "39 significant digits"),
        (Decimal("1E+130"), "outside the range"),
        (1e-300, "outside the range"),
        ("12a", "is not a number"),
    ],
)
def test_numbers_dynamodb_cannot_hold_are_errors(value: Any, message: str) -> None:
    with pytest.raises(CodecError, match=message):
        number_text(value)


def test_38_digits_fit_and_trailing_zeros_do_not_count() -> None:
    assert number_text(Decimal("12345678901234567890123456789012345678")) == (
        "12345678901234567890123456789012345678"
    )
    assert number_text(Decimal("1.2000000000000000000000000000000000000000000")) == (
        "1.2000000000000000000000000000000000000000000"
    )


ROUND_TRIP: list[tuple[ColumnType, Any]] = [
    (T(Kind.INT64), -(2**63)),
    (T(Kind.DECIMAL, precision=38, scale=9), Decimal("12345678901234567890.123456789")),
    (T(Kind.DECIMAL, precision=12, scale=4), Decimal("1.5000")),
    (T(Kind.DECIMAL), "-1234567890123456789012345678901234567890.5"),
    (T(Kind.FLOAT32), float(pa.array([1.1], pa.float32())[0].as_py())),
    (T(Kind.FLOAT64), 1 / 3),
    (T(Kind.BINARY), bytes(range(256))),
    (T(Kind.DATE), dt.date(1, 1, 1)),
    (T(Kind.TIME), dt.time(23, 59, 59, 999999)),
    (T(Kind.TIMESTAMP), dt.datetime(9999, 12, 31, 23, 59, 59, 999999)),
    (T(Kind.TIMESTAMPTZ), dt.datetime(2020, 2, 29, 18, 29, 59, tzinfo=UTC)),
    (T(Kind.INTERVAL), _interval(-1, 2, -3_000)),
    (T(Kind.ARRAY, element=T(Kind.STRING)), ["a", None, ""]),
]


@pytest.mark.parametrize(("ctype", "value"), ROUND_TRIP, ids=[str(c) for c, _ in ROUND_TRIP])
def test_decode_reads_back_what_encode_wrote(ctype: ColumnType, value: Any) -> None:
    assert decode(ctype, encode(ctype, value)) == value


def test_json_reads_back_as_the_same_document() -> None:
    text = '{"a": [1, 2.5, "x", null, true], "b": {}}'
    assert decode(T(Kind.JSON), encode(T(Kind.JSON), text)) == text


def test_templates_put_values_as_exact_text() -> None:
    assert text_of(Decimal("1E+2")) == "100"
    assert text_of(True) == "true"
    assert text_of(None) == ""
    assert text_of(dt.date(2021, 3, 1)) == "2021-03-01"
    assert text_of(b"\x01\xab") == "01ab"


def test_item_size_counts_names_and_values() -> None:
    item: dict[str, Any] = {
        "pk": {"S": "héllo"},  # 2 + 6
        "n": {"N": "12345.67"},  # 1 + (7 + 1) // 2 + 1
        "b": {"B": b"abc"},  # 1 + 3
        "ok": {"BOOL": True},  # 2 + 1
        "m": {"M": {"x": {"S": "y"}}},  # 1 + 3 + (1 + 1 + 1)
        "l": {"L": [{"N": "1"}]},  # 1 + 3 + (2 + 1)
    }
    assert item_size(item) == 8 + 6 + 4 + 3 + 7 + 7
    assert MAX_ITEM_BYTES == 409600
