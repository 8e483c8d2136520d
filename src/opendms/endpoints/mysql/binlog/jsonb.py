"""MySQL binary JSON (the JSON column type on MySQL) as JSON text.

MySQL stores JSON columns in a binary format (MariaDB stores them as text):
:func:`mysql_json_text` turns a document into JSON text in MySQL's own layout,
as ``SELECT`` shows it (``{"a": 1, "b": [2]}``). The generated column decoders
call it as ``_json``.
"""

from __future__ import annotations

import json
import struct
from typing import Any

from opendms.endpoints.mysql.binlog.codegen import Gen, compile_value, decimal_code
from opendms.endpoints.mysql.binlog.events import I64, U16, BadValueError, Col
from opendms.endpoints.mysql.binlog.runtime import BASE_NS
from opendms.endpoints.mysql.binlog.tablemap import ColumnInfo


class _Raw(str):
    """Text already in JSON form (a quoted date, a decimal)."""


def mysql_json_text(data: bytes) -> str:
    """MySQL binary JSON -> JSON text in MySQL's own layout (``{"a": 1, "b": [2]}``)."""
    if not data:
        return "null"
    return _json_dump(_json_value(data[0], data, 1))


def _json_value(kind: int, buf: bytes, pos: int) -> Any:
    if kind <= 3:
        return _json_container(buf, pos, large=kind in (1, 3), is_object=kind <= 1)
    if kind == 4:
        return {0: None, 1: True, 2: False}[buf[pos]]
    scalar = _JSON_SCALARS.get(kind)
    if scalar is not None:
        return scalar.unpack_from(buf, pos)[0]
    if kind == 12:
        size, pos = _json_varlen(buf, pos)
        return buf[pos : pos + size].decode("utf-8", "replace")
    if kind == 15:
        size, start = _json_varlen(buf, pos + 1)
        return _json_opaque(buf[pos], buf[start : start + size])
    raise BadValueError(f"unknown MySQL JSON value type {kind}")


_JSON_SCALARS = {
    5: struct.Struct("<h"),
    6: struct.Struct("<H"),
    7: struct.Struct("<i"),
    8: struct.Struct("<I"),
    9: struct.Struct("<q"),
    10: struct.Struct("<Q"),
    11: struct.Struct("<d"),
}


def _json_varlen(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _json_container(buf: bytes, pos: int, large: bool, is_object: bool) -> Any:
    word = struct.Struct("<I" if large else "<H")
    size = word.size
    count = word.unpack_from(buf, pos)[0]
    key_entry, value_entry = size + 2, 1 + size
    values_at = pos + 2 * size + (count * key_entry if is_object else 0)
    values = []
    for i in range(count):
        entry = values_at + i * value_entry
        kind = buf[entry]
        if kind in (4, 5, 6) or (large and kind in (7, 8)):
            values.append(_json_value(kind, buf, entry + 1))
        else:
            values.append(_json_value(kind, buf, pos + word.unpack_from(buf, entry + 1)[0]))
    if not is_object:
        return values
    keys = []
    for i in range(count):
        entry = pos + 2 * size + i * key_entry
        offset, length = word.unpack_from(buf, entry)[0], U16(buf, entry + size)[0]
        keys.append(buf[pos + offset : pos + offset + length].decode("utf-8", "replace"))
    return dict(zip(keys, values, strict=True))


def _json_opaque(field_type: int, data: bytes) -> Any:
    if field_type == Col.NEWDECIMAL:
        return _Raw(format(_decimal(data[0] << 8 | data[1], data), "f"))  # 0E-10: 0.0000000000
    if field_type in (Col.DATE, Col.DATETIME, Col.TIMESTAMP, Col.TIME):
        packed = I64(data, 0)[0]
        return _Raw(json.dumps(_packed_temporal(field_type, packed)))
    import base64

    return _Raw(json.dumps(f"base64:type{field_type}:{base64.b64encode(data).decode()}"))


def _packed_temporal(field_type: int, packed: int) -> str:
    sign = "-" if packed < 0 else ""
    packed = abs(packed)
    whole, micros = packed >> 24, packed & 0xFFFFFF
    hms = whole & 0x1FFFF
    clock = f"{hms >> 12:02d}:{hms >> 6 & 63:02d}:{hms & 63:02d}.{micros:06d}"
    if field_type == Col.TIME:  # the hour has 10 bits: up to 838
        return sign + f"{whole >> 12 & 0x3FF:02d}" + clock[2:]
    ymd = whole >> 17
    day = f"{(ymd >> 5) // 13:04d}-{(ymd >> 5) % 13:02d}-{ymd & 31:02d}"
    return day if field_type == Col.DATE else f"{day} {clock}"


def _json_dump(value: Any) -> str:
    if isinstance(value, _Raw):
        return str(value)
    if isinstance(value, dict):
        items = (f"{json.dumps(k, ensure_ascii=False)}: {_json_dump(v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_json_dump(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def _decimal(meta: int, data: bytes) -> Any:
    """A DECIMAL (``meta``: precision << 8 | scale) stored after its two meta bytes."""
    gen = Gen(BASE_NS)
    code = decimal_code(ColumnInfo("", Col.NEWDECIMAL, meta=meta), gen)
    return compile_value(code, gen, "json decimal")(data, 2)[0]
