"""Vectorised evaluation of the simplest DMS expressions, with SQLite's results.

:mod:`opendms.mapping.expressions` evaluates expressions with SQLite itself, one row at
a time. The most common expressions of the DMS guide and labs (``$first || ' ' ||
$last``, ``$qty * 2``, ``upper($code)``) need none of SQLite's conversions, so they are
also evaluated here over whole Arrow arrays, giving exactly what SQLite gives. Anything
outside this subset is :class:`NotVectorisableError` and stays with SQLite:

* operands: ``$column`` of a text column (TEXT) or of a signed integer column (INTEGER),
  string literals (``'it''s'``), integer literals that fit 64 bits;
* ``a || b`` over TEXT and INTEGER operands (an integer becomes its decimal text, NULL
  makes NULL), giving TEXT;
* ``a + b``, ``a - b``, ``a * b`` and unary ``-`` over INTEGER operands, giving INTEGER;
  where SQLite's result would overflow 64 bits (it then gives a REAL), evaluation
  raises :class:`IntegerOverflowError` and the caller falls back to SQLite;
* ``upper(x)``, ``lower(x)`` (ASCII letters only, as SQLite without ICU), ``trim(x)``,
  ``ltrim(x)``, ``rtrim(x)`` (spaces only) over TEXT;
* parentheses, with SQLite's precedence (``||`` binds tighter than ``*``, which binds
  tighter than ``+`` and ``-``).

The equality with SQLite is checked by a differential test over random expressions and
values (``tests/unit/test_arrowexpr.py``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["Evaluator", "IntegerOverflowError", "NotVectorisableError", "compile_vector"]

TEXT_TYPES = (pa.string(), pa.large_string())
INT_TYPES = (pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint16(), pa.uint32())

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<int>\d+)(?![\w.])|\$(?P<ref>\w+)"
    r"|(?P<name>[A-Za-z_]\w*)|(?P<comment>--|/\*)|(?P<op>\|\||[-+*(),]))"
)
_FUNCTIONS: dict[str, Callable[[Any], Any]] = {
    "upper": pc.ascii_upper,
    "lower": pc.ascii_lower,
    "trim": lambda a: pc.utf8_trim(a, characters=" "),
    "ltrim": lambda a: pc.utf8_ltrim(a, characters=" "),
    "rtrim": lambda a: pc.utf8_rtrim(a, characters=" "),
}
_BINARY = {"||": 3, "*": 2, "+": 1, "-": 1}
_ARITHMETIC = {"+": pc.add_checked, "-": pc.subtract_checked, "*": pc.multiply_checked}


class NotVectorisableError(Exception):
    """The expression is outside the vectorised subset (SQLite evaluates it)."""


class IntegerOverflowError(Exception):
    """Integer arithmetic left 64 bits for some row (SQLite would give a REAL)."""


class Storage(Enum):
    """SQLite's storage class of a (non-NULL) value of a node."""

    TEXT = "text"
    INTEGER = "integer"


Evaluator = Callable[[pa.RecordBatch], "pa.Array[Any]"]
"""Takes the source batch, gives the expression's values (string or int64)."""


@dataclass(frozen=True)
class _Node:
    storage: Storage
    run: Callable[[pa.RecordBatch], Any]  # an Array or a Scalar


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        if not text[pos:].strip():
            break
        match = _TOKEN.match(text, pos)
        if match is None or match.lastgroup in (None, "comment"):
            raise NotVectorisableError(text[pos:])
        out.append((match.lastgroup, match.group(match.lastgroup)))
        pos = match.end()
    return out


class _Parser:
    """Precedence climbing over the tokens, building typed evaluators."""

    def __init__(self, text: str, columns: Mapping[str, pa.DataType]) -> None:
        self.tokens = _tokens(text)
        self.pos = 0
        self.columns = columns

    def parse(self) -> _Node:
        node = self.binary(0)
        if self.pos != len(self.tokens):
            raise NotVectorisableError("trailing text")
        return node

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, value: str) -> None:
        if self.peek() != ("op", value):
            raise NotVectorisableError(f"expected {value}")
        self.pos += 1

    def binary(self, floor: int) -> _Node:
        left = self.unary()
        while (tok := self.peek()) and tok[0] == "op" and _BINARY.get(tok[1], -1) > floor:
            self.pos += 1
            right = self.binary(_BINARY[tok[1]])
            left = _combine(tok[1], left, right)
        return left

    def unary(self) -> _Node:
        tok = self.peek()
        if tok == ("op", "-"):
            self.pos += 1
            return _negate(self.unary())
        if tok == ("op", "+"):
            raise NotVectorisableError("unary +")
        return self.primary()

    def primary(self) -> _Node:
        tok = self.peek()
        if tok is None:
            raise NotVectorisableError("missing operand")
        self.pos += 1
        kind, text = tok
        if kind == "str":
            return _literal(pa.scalar(text[1:-1].replace("''", "'"), pa.string()))
        if kind == "int":
            if int(text) >= 2**63:
                raise NotVectorisableError("integer literal beyond 64 bits")
            return _literal(pa.scalar(int(text), pa.int64()))
        if kind == "ref":
            return self.column(text)
        if kind == "name":
            return self.call(text.lower())
        if (kind, text) == ("op", "("):
            node = self.binary(0)
            self.take(")")
            return node
        raise NotVectorisableError(text)

    def column(self, name: str) -> _Node:
        dtype = self.columns.get(name)
        if dtype in TEXT_TYPES:
            return _Node(Storage.TEXT, lambda b: _column(b, name, TEXT_TYPES))
        if dtype in INT_TYPES:
            return _Node(
                Storage.INTEGER, lambda b: pc.cast(_column(b, name, INT_TYPES), pa.int64())
            )
        raise NotVectorisableError(f"${name}")

    def call(self, name: str) -> _Node:
        func = _FUNCTIONS.get(name)
        if func is None:
            raise NotVectorisableError(f"{name}()")
        self.take("(")
        arg = self.binary(0)
        self.take(")")
        if arg.storage is not Storage.TEXT:
            raise NotVectorisableError(f"{name}() of an integer")
        return _Node(Storage.TEXT, lambda b: func(_array(arg.run(b), b.num_rows)))


def _column(batch: pa.RecordBatch, name: str, types: tuple[pa.DataType, ...]) -> Any:
    """The batch's column, if its type is the one compiled for (else SQLite decides)."""
    array = batch.column(name)
    if array.type not in types:
        raise NotVectorisableError(f"${name} is {array.type}")
    return array


def _literal(value: pa.Scalar[Any]) -> _Node:
    storage = Storage.TEXT if value.type == pa.string() else Storage.INTEGER
    return _Node(storage, lambda b: value)


def _array(value: Any, rows: int) -> pa.Array[Any]:
    if isinstance(value, pa.Scalar):
        filled: pa.Array[Any] = pa.array([value.as_py()] * rows, value.type)
        return filled
    if isinstance(value, pa.ChunkedArray):
        value = value.combine_chunks()
    array: pa.Array[Any] = value
    return array


def _text(node: _Node) -> Callable[[pa.RecordBatch], Any]:
    if node.storage is Storage.TEXT:
        return node.run
    return lambda b: pc.cast(node.run(b), pa.string())


def _checked(func: Callable[..., Any], *args: Any) -> Any:
    try:
        return func(*args)
    except pa.ArrowInvalid as exc:
        if "overflow" in str(exc).lower():
            raise IntegerOverflowError(str(exc)) from exc
        raise


def _combine(op: str, left: _Node, right: _Node) -> _Node:
    if op == "||":
        lt, rt = _text(left), _text(right)

        def concat(b: pa.RecordBatch) -> Any:
            return pc.binary_join_element_wise(lt(b), rt(b), "", null_handling="emit_null")

        return _Node(Storage.TEXT, concat)
    if Storage.TEXT in (left.storage, right.storage):
        raise NotVectorisableError(f"text operand of {op}")
    func = _ARITHMETIC[op]
    return _Node(Storage.INTEGER, lambda b: _checked(func, left.run(b), right.run(b)))


def _negate(node: _Node) -> _Node:
    if node.storage is Storage.TEXT:
        raise NotVectorisableError("- of text")
    return _Node(Storage.INTEGER, lambda b: _checked(pc.negate_checked, node.run(b)))


def compile_vector(text: str, columns: Mapping[str, pa.DataType]) -> Evaluator:
    """An evaluator for expression ``text`` (``$name`` references to the source
    columns, whose Arrow types are ``columns``); :class:`NotVectorisableError` when the
    expression is outside the subset of the module docstring."""
    node = _Parser(text, columns).parse()
    arrow_type = pa.string() if node.storage is Storage.TEXT else pa.int64()

    def evaluate(batch: pa.RecordBatch) -> pa.Array[Any]:
        result = _array(node.run(batch), batch.num_rows)
        if result.type != arrow_type:
            result = result.cast(arrow_type)
        return result

    return evaluate
