"""The SQLite side of :mod:`opendms.mapping.expressions`.

DMS evaluates transformation expressions with SQLite, so opendms does too: each
compiled plan owns an in-memory SQLite database (Python's :mod:`sqlite3`) with one
table, :data:`TABLE`, that holds a batch's referenced source columns (``c0``..``cN``,
decimals with NUMERIC affinity as in a SQLite table). The expressions are one
``SELECT`` over it, so every built-in function, operator, type conversion and
NULL rule is SQLite's own. DMS's own functions are registered on the connection:
``hash_sha256(x)``, ``replaceChars(x, y, z)`` and (rewritten from
``operation_indicator(d, u, i)``) :data:`OPERATION_FUNCTION`.

Functions here take expression text whose ``$name`` references have already been
substituted (source columns by ``cN``, header columns by ``:AR_H_...`` parameters).
"""

from __future__ import annotations

import hashlib
import math
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "OPERATION_FUNCTION",
    "TABLE",
    "Error",
    "InvalidText",
    "check",
    "connect",
    "real_text",
    "run",
]

TABLE = "__opendms_batch"
OPERATION_FUNCTION = "__opendms_operation_indicator"
Error = sqlite3.Error


def real_text(value: float) -> str:
    """SQLite's text for a REAL (``'%!.15g'``: ``1.0``, ``0.1``, ``1.0e+20``)."""
    if math.isinf(value):
        return "Inf" if value > 0 else "-Inf"
    if value == 0:
        return "0.0"  # -0.0 too
    text = f"{value:.15g}"
    mantissa, e, exponent = text.partition("e")
    if "." not in mantissa and mantissa.lstrip("-").isdigit():
        mantissa += ".0"
    return mantissa + (e + exponent if e else "")


class InvalidText(bytes):
    """Text SQLite produced that is not UTF-8 (a blob cast to TEXT): its bytes."""


def _text_factory(data: bytes) -> str | InvalidText:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return InvalidText(data)


def _as_text(value: Any) -> str:
    if isinstance(value, float):
        return real_text(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _hash_sha256(value: Any) -> str | None:
    """Lower-case hex SHA-256 of the value: a BLOB's bytes, else its SQLite text in UTF-8."""
    if value is None:
        return None
    data = value if isinstance(value, bytes) else _as_text(value).encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def _replace_chars(value: Any, find: Any, into: Any) -> str | None:
    """DMS ``replaceChars(X, Y, Z)``: each character of X found in Y becomes the character
    of Z at the same position (Z's first character when Z is shorter); others stay."""
    if value is None or find is None or into is None:
        return None
    text, chars, repl = _as_text(value), _as_text(find), _as_text(into)
    if not repl:
        return text
    table: dict[str, str] = {}
    for i, ch in enumerate(chars):
        table.setdefault(ch, repl[i] if i < len(repl) else repl[0])
    return "".join(table.get(ch, ch) for ch in text)


def _operation_indicator(operation: Any, deleted: Any, updated: Any, inserted: Any) -> Any:
    if operation == "DELETE":
        return deleted
    if operation == "UPDATE":
        return updated
    return inserted


def connect(columns: int, numeric: Iterable[int] = ()) -> sqlite3.Connection:
    """A private in-memory SQLite with DMS's functions and :data:`TABLE` of ``columns``
    columns (those in ``numeric`` with NUMERIC affinity, the others with none)."""
    con = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
    con.text_factory = _text_factory
    con.create_function("hash_sha256", 1, _hash_sha256, deterministic=True)
    con.create_function("replaceChars", 3, _replace_chars, deterministic=True)
    con.create_function(OPERATION_FUNCTION, 4, _operation_indicator, deterministic=True)
    wanted = set(numeric)
    defs = ["__opendms_row"] + [
        f"c{i}" + (" NUMERIC" if i in wanted else "") for i in range(columns)
    ]
    con.execute(f"CREATE TABLE {TABLE} ({', '.join(defs)})")
    return con


def check(con: sqlite3.Connection, expression: str, params: Mapping[str, Any]) -> None:
    """Compile ``expression`` over the (empty) table: sqlite3.Error for bad syntax,
    unknown functions or columns, and aggregate or window functions (which SQLite
    refuses in a WHERE clause)."""
    con.execute(f"SELECT ({expression}\n) FROM {TABLE}", params).fetchall()
    con.execute(f"SELECT 1 FROM {TABLE} WHERE ({expression}\n) IS NULL", params).fetchall()


def run(
    con: sqlite3.Connection,
    sql: str,
    columns: Sequence[list[Any]],
    rows: int,
    params: Mapping[str, Any],
) -> list[tuple[Any, ...]]:
    """``sql`` (a SELECT over :data:`TABLE`) over ``rows`` rows of ``columns``."""
    con.execute(f"DELETE FROM {TABLE}")
    if columns:
        marks = ", ".join("?" * (len(columns) + 1))
        con.executemany(
            f"INSERT INTO {TABLE} VALUES ({marks})", zip([None] * rows, *columns, strict=True)
        )
    else:
        con.executemany(f"INSERT INTO {TABLE} VALUES (NULL)", [()] * rows)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.execute(f"DELETE FROM {TABLE}")
