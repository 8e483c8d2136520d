"""DynamoDB ``AttributeValue`` s (boto3's low-level form, ``{"N": "1.5"}``) as canonical
values, exactly: I/O-free, shared by the ``Scan`` source and the Streams change source.

Canonical forms by column kind (see :mod:`.infer` for how a column gets its kind):

* ``decimal`` (unconstrained, carried as text): ``N`` as plain decimal digits
  (``1E+3`` -> ``1000``, ``1.50`` -> ``1.5``), never through a float;
* ``string``: ``S`` as it is; ``binary``: ``B`` bytes; ``bool``: ``BOOL``;
* ``json``: any value as JSON text: ``M`` an object, ``L`` an array, ``SS``/``NS``/``BS``
  arrays (in the order DynamoDB returns them), ``N`` a JSON number with every digit,
  ``B`` and binary set members base64 text, ``NULL`` ``null``;
* ``NULL`` (and an absent attribute) is SQL NULL in every column.

A value of another type than its column's (an attribute that was text in the sampled
items and is a number later) is a :class:`MismatchError`: a string column takes it as JSON
text, other columns report it (a rejected row in the full load, a data error in CDC)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from decimal import Context, Decimal, InvalidOperation
from typing import Any

from opendms.model import ColumnType, Kind

__all__ = ["DOC", "MismatchError", "attribute", "canonical", "json_text", "number_text", "type_of"]

AttributeValue = Mapping[str, Any]
Item = Mapping[str, AttributeValue]

DOC = "_doc"
"""The map attribute that the DMS ``map-record-to-document`` rule writes non-key columns
into: a column that is not a top-level attribute is looked up there."""

_EXACT = Context(prec=100)  # normalize() rounds to its context (28 digits by default)


class MismatchError(ValueError):
    """An attribute value whose DynamoDB type does not fit its column's kind."""


def type_of(value: AttributeValue) -> str:
    """The DynamoDB type tag of ``value`` (``S``, ``N``, ``M``, ...)."""
    return next(iter(value))


def attribute(item: Item, name: str) -> AttributeValue | None:
    """Attribute ``name`` of ``item``, else the member ``name`` of its ``_doc`` map."""
    found = item.get(name)
    if found is not None:
        return found
    doc = item.get(DOC)
    if doc is not None and name != DOC and "M" in doc:
        member: AttributeValue | None = doc["M"].get(name)
        return member
    return None


def number_text(text: str) -> str:
    """A DynamoDB number as plain decimal digits: no exponent, no trailing fraction
    zeros (DynamoDB itself drops them; some emulators keep them), every digit kept."""
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise MismatchError(f"{text!r} is not a number") from None
    if not number.is_finite():
        raise MismatchError(f"{text!r} is not a finite number")
    return format(number.normalize(_EXACT), "f")


def _b64(data: bytes) -> str:
    return base64.b64encode(bytes(data)).decode("ascii")


def _string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _members(tag: str, values: list[Any]) -> str:
    encode: Callable[[Any], str] = {
        "SS": _string,
        "NS": number_text,
        "BS": lambda b: _string(_b64(b)),
    }[tag]
    return "[" + ", ".join(encode(v) for v in values) + "]"


def json_text(value: AttributeValue) -> str:
    """``value`` as JSON text (numbers with every digit, binary as base64 text)."""
    tag = type_of(value)
    inner = value[tag]
    if tag == "S":
        return _string(inner)
    if tag == "N":
        return number_text(inner)
    if tag == "B":
        return _string(_b64(inner))
    if tag == "BOOL":
        return "true" if inner else "false"
    if tag == "NULL":
        return "null"
    if tag == "M":
        pairs = (f"{_string(k)}: {json_text(v)}" for k, v in inner.items())
        return "{" + ", ".join(pairs) + "}"
    if tag == "L":
        return "[" + ", ".join(json_text(v) for v in inner) + "]"
    if tag in ("SS", "NS", "BS"):
        return _members(tag, list(inner))
    raise MismatchError(f"unknown DynamoDB type {tag!r}")


def _native(tag: str, inner: Any, kind: Kind) -> Any:
    """The canonical value of a value whose type is its column's own."""
    if kind is Kind.DECIMAL:
        return number_text(inner)
    if kind is Kind.BINARY:
        return bytes(inner)
    return inner  # S -> string, BOOL -> bool


_NATIVE: dict[Kind, str] = {
    Kind.STRING: "S",
    Kind.DECIMAL: "N",
    Kind.BINARY: "B",
    Kind.BOOL: "BOOL",
}


def canonical(value: AttributeValue | None, ctype: ColumnType) -> Any:
    """The canonical Python value of ``value`` in a column of ``ctype`` (None: NULL);
    :class:`MismatchError` when it does not fit the column."""
    if value is None:
        return None
    tag = type_of(value)
    if tag == "NULL":
        return None
    if ctype.kind is Kind.JSON:
        return json_text(value)
    if _NATIVE.get(ctype.kind) == tag:
        return _native(tag, value[tag], ctype.kind)
    if ctype.kind is Kind.STRING:
        return json_text(value)
    raise MismatchError(f"a {tag} value in a {ctype} column")
