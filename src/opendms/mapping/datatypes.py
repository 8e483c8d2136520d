"""DMS ``data-type`` objects (``{"type": "string", "length": 50}``) as opendms types.

The mapping keeps every value representable without loss:

======================  =====================================
DMS type                opendms ColumnType
======================  =====================================
boolean                 BOOL
bytes (length)          BINARY (length)
date                    DATE
time                    TIME
datetime (precision)    TIMESTAMP (precision = fractional digits;
                        DMS also spells it ``scale``)
int1, int2              INT16
int4                    INT32
int8                    INT64
uint1                   INT16
uint2                   INT32
uint4                   INT64
uint8                   DECIMAL(20, 0)
numeric (precision,     DECIMAL (precision, scale); no precision
scale)                  = unconstrained decimal
real4                   FLOAT32
real8                   FLOAT64
string, wstring         STRING (length)
clob, nclob             STRING
blob                    BINARY
======================  =====================================
"""

from __future__ import annotations

from opendms.mapping._reader import Node
from opendms.model import ColumnType, Kind

_PLAIN: dict[str, ColumnType] = {
    "boolean": ColumnType(Kind.BOOL),
    "date": ColumnType(Kind.DATE),
    "time": ColumnType(Kind.TIME),
    "int1": ColumnType(Kind.INT16),
    "int2": ColumnType(Kind.INT16),
    "int4": ColumnType(Kind.INT32),
    "int8": ColumnType(Kind.INT64),
    "uint1": ColumnType(Kind.INT16),
    "uint2": ColumnType(Kind.INT32),
    "uint4": ColumnType(Kind.INT64),
    "uint8": ColumnType(Kind.DECIMAL, precision=20, scale=0),
    "real4": ColumnType(Kind.FLOAT32),
    "real8": ColumnType(Kind.FLOAT64),
    "blob": ColumnType(Kind.BINARY),
    "clob": ColumnType(Kind.STRING),
    "nclob": ColumnType(Kind.STRING),
}

_LENGTH_KINDS: dict[str, Kind] = {
    "string": Kind.STRING,
    "wstring": Kind.STRING,
    "bytes": Kind.BINARY,
}

DMS_TYPES: tuple[str, ...] = (*_PLAIN, *_LENGTH_KINDS, "numeric", "datetime")

_PARAMS: dict[str, tuple[str, ...]] = {
    **{name: () for name in _PLAIN},
    **{name: ("length",) for name in _LENGTH_KINDS},
    "numeric": ("precision", "scale"),
    "datetime": ("precision", "scale"),
}


def parse_data_type(node: Node) -> ColumnType:
    """Read a DMS ``data-type`` object and return the opendms column type."""
    node.object(("type", "length", "precision", "scale"), required=("type",))
    name = node.key("type").choice(DMS_TYPES, "data type")
    for param in ("length", "precision", "scale"):
        if node.has(param) and param not in _PARAMS[name]:
            node.key(param).fail(f"{param!r} is not a parameter of DMS type {name!r}")
    if name in _PLAIN:
        return _PLAIN[name]
    if name in _LENGTH_KINDS:
        length = node.key("length").integer(minimum=1) if node.has("length") else None
        return ColumnType(_LENGTH_KINDS[name], length=length)
    if name == "numeric":
        return _numeric(node)
    return _datetime(node)


def _numeric(node: Node) -> ColumnType:
    if not node.has("precision"):
        if node.has("scale"):
            node.key("scale").fail("'scale' needs 'precision'")
        return ColumnType(Kind.DECIMAL)
    precision = node.key("precision").integer(minimum=1)
    scale = node.key("scale").integer() if node.has("scale") else 0
    if scale > precision:
        node.key("scale").fail(f"scale {scale} exceeds precision {precision}")
    return ColumnType(Kind.DECIMAL, precision=precision, scale=scale)


def _datetime(node: Node) -> ColumnType:
    digits: int | None = None
    for param in ("precision", "scale"):
        if node.has(param):
            value = node.key(param).integer()
            if value > 9:
                node.key(param).fail(f"fractional-second digits must be 0..9, got {value}")
            if digits is not None and digits != value:
                node.key(param).fail("'precision' and 'scale' disagree")
            digits = value
    return ColumnType(Kind.TIMESTAMP, precision=digits)
