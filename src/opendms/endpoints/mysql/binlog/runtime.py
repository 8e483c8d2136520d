"""What the generated row decoders call at run time, and the globals they see.

The column decoders that ``codegen`` / ``colcode`` generate inline the common
conversions; the rest (timestamps, TIME values, pre-5.6 temporal types, SET
labels, UUIDs, BIT range checks) are the helpers here, bound under short names
in :data:`BASE_NS` (the names the generated source uses).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Context, Decimal
from typing import Any

import pyarrow as pa

from opendms.changes import Change
from opendms.endpoints.mysql.binlog.events import (
    F32,
    F64,
    I16,
    I32,
    I64,
    U16,
    U32,
    U32BE,
    U64,
    ZERO_DATE,
    BadValueError,
    uncompress,
)
from opendms.endpoints.mysql.values import time_interval

_S8 = tuple(i - 256 if i > 127 else i for i in range(256))
_YEAR = (0, *(1900 + i for i in range(1, 256)))
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CTX = Context(prec=100)  # exact for any MySQL DECIMAL (65 digits)


def _timestamp(seconds: int, micros: int) -> datetime:
    if not seconds and not micros:
        raise BadValueError(ZERO_DATE)
    return _EPOCH + timedelta(0, seconds, micros)


def _time2(buf: bytes, pos: int, fsp: int) -> pa.MonthDayNano:
    """TIME2: 3 bytes (sign, hour, minute, second) + fraction, big-endian."""
    nfrac = (fsp + 1) // 2
    intpart = int.from_bytes(buf[pos : pos + 3], "big") - 0x800000
    if nfrac == 0:
        packed = intpart << 24
    elif nfrac == 1:
        frac = buf[pos + 3]
        if intpart < 0 and frac:
            intpart, frac = intpart + 1, frac - 0x100
        packed = (intpart << 24) + frac * 10000
    elif nfrac == 2:
        frac = buf[pos + 3] << 8 | buf[pos + 4]
        if intpart < 0 and frac:
            intpart, frac = intpart + 1, frac - 0x10000
        packed = (intpart << 24) + frac * 100
    else:
        packed = int.from_bytes(buf[pos : pos + 6], "big") - 0x800000000000
    return _packed_time(packed)


def _packed_time(packed: int) -> pa.MonthDayNano:
    """A packed TIME (sign, 10-bit hour, minute, second, microseconds) as an interval:
    MySQL TIME is a signed duration of up to 838:59:59."""
    magnitude = abs(packed)
    hms, micros = magnitude >> 24, magnitude & 0xFFFFFF
    seconds = ((hms >> 12 & 0x3FF) * 60 + (hms >> 6 & 63)) * 60 + (hms & 63)
    total = seconds * 1_000_000 + micros
    return time_interval(-total if packed < 0 else total)


def _old_time(value: int) -> pa.MonthDayNano:
    """Pre-5.6 TIME: the signed integer [-]HHHMMSS."""
    hours, rest = divmod(abs(value), 10000)
    seconds = (hours * 60 + rest // 100) * 60 + rest % 100
    return time_interval(-seconds * 1_000_000 if value < 0 else seconds * 1_000_000)


def _old_datetime(value: int) -> datetime:
    """Pre-5.6 DATETIME: the integer YYYYMMDDhhmmss."""
    day, clock = divmod(value, 1000000)
    return datetime(
        day // 10000, day // 100 % 100, day % 100, clock // 10000, clock // 100 % 100, clock % 100
    )


def _set_text(labels: tuple[str, ...], bits: int) -> str:
    return ",".join(label for i, label in enumerate(labels) if bits >> i & 1)


def _uuid_text(raw: bytes) -> str:
    h = raw.ljust(16, b"\x00").hex()  # trailing zero bytes are not logged
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _bit_int(value: int) -> int:
    if value >> 63:
        raise BadValueError(f"BIT value {value} does not fit a 64-bit signed integer")
    return value


# The globals of every generated decoder: the names its source calls.
BASE_NS: dict[str, Any] = {
    "_U16": U16,
    "_I16": I16,
    "_U32": U32,
    "_I32": I32,
    "_U64": U64,
    "_I64": I64,
    "_F32": F32,
    "_F64": F64,
    "_U32BE": U32BE,
    "_S8": _S8,
    "_YEAR": _YEAR,
    "_date": date,
    "_dt": datetime,
    "_D": Decimal,
    "_CTX": _CTX,
    "_mul": _CTX.multiply,
    "_ts": _timestamp,
    "_time2": _time2,
    "_old_time": _old_time,
    "_old_dt": _old_datetime,
    "_set": _set_text,
    "_unc": uncompress,
    "_uuid": _uuid_text,
    "_bit": _bit_int,
    "_new": Change.__new__,
    "_Change": Change,
    "_setattr": object.__setattr__,
}
