"""DMS data-type objects mapped to opendms canonical column types."""

from __future__ import annotations

from typing import Any

import pytest

from opendms.errors import ConfigError
from opendms.mapping import parse_data_type
from opendms.mapping._reader import Node
from opendms.model import ColumnType, Kind


@pytest.mark.parametrize(
    ("dms", "expected"),
    [
        ({"type": "boolean"}, ColumnType(Kind.BOOL)),
        ({"type": "bytes", "length": 16}, ColumnType(Kind.BINARY, length=16)),
        ({"type": "blob"}, ColumnType(Kind.BINARY)),
        ({"type": "date"}, ColumnType(Kind.DATE)),
        ({"type": "time"}, ColumnType(Kind.TIME)),
        ({"type": "datetime"}, ColumnType(Kind.TIMESTAMP)),
        ({"type": "datetime", "precision": 6}, ColumnType(Kind.TIMESTAMP, precision=6)),
        ({"type": "datetime", "scale": 3}, ColumnType(Kind.TIMESTAMP, precision=3)),
        ({"type": "int1"}, ColumnType(Kind.INT16)),
        ({"type": "int2"}, ColumnType(Kind.INT16)),
        ({"type": "int4"}, ColumnType(Kind.INT32)),
        ({"type": "int8"}, ColumnType(Kind.INT64)),
        ({"type": "uint1"}, ColumnType(Kind.INT16)),
        ({"type": "uint2"}, ColumnType(Kind.INT32)),
        ({"type": "uint4"}, ColumnType(Kind.INT64)),
        ({"type": "uint8"}, ColumnType(Kind.DECIMAL, precision=20, scale=0)),
        (
            {"type": "numeric", "precision": 12, "scale": 2},
            ColumnType(Kind.DECIMAL, precision=12, scale=2),
        ),
        ({"type": "numeric", "precision": "10"}, ColumnType(Kind.DECIMAL, precision=10, scale=0)),
        ({"type": "numeric"}, ColumnType(Kind.DECIMAL)),
        ({"type": "real4"}, ColumnType(Kind.FLOAT32)),
        ({"type": "real8"}, ColumnType(Kind.FLOAT64)),
        ({"type": "string", "length": 50}, ColumnType(Kind.STRING, length=50)),
        ({"type": "string"}, ColumnType(Kind.STRING)),
        ({"type": "wstring", "length": 20}, ColumnType(Kind.STRING, length=20)),
        ({"type": "clob"}, ColumnType(Kind.STRING)),
        ({"type": "nclob"}, ColumnType(Kind.STRING)),
    ],
)
def test_dms_data_types_map_to_canonical_types(dms: dict[str, Any], expected: ColumnType) -> None:
    assert parse_data_type(Node(dms, "$.t", "x")) == expected


def test_datetime_precision_and_scale_must_agree() -> None:
    with pytest.raises(ConfigError) as info:
        parse_data_type(Node({"type": "datetime", "precision": 6, "scale": 3}, "$.d", "x"))
    assert info.value.path == "$.d.scale"
