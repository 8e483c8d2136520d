"""A DynamoDB table as columns: the key from ``DescribeTable``, the other attributes
inferred from sampled items. I/O-free.

* Key attributes (partition, then sort key) are the primary key, not nullable, typed by
  their ``AttributeDefinitions``: ``S`` string, ``N`` decimal, ``B`` binary.
* Every other attribute seen in the sample is a nullable column, typed by the
  DynamoDB types seen for it (``NULL`` values aside) by :data:`KINDS`: ``S`` string,
  ``N`` decimal (unconstrained: numbers are carried exactly, never narrowed to an
  integer type the sample happened to fit), ``B`` binary, ``BOOL`` bool, ``M``/``L``
  and the sets JSON. Two or more types, or only ``NULL`` s: JSON (every value fits).
* Members of a ``_doc`` map attribute (the DMS ``map-record-to-document`` shape) are
  columns too, after the top-level attributes of the same name; ``_doc`` itself is not.
* Columns are ordered key first, then by name (DynamoDB keeps no attribute order).

An attribute first seen after the table was described (in a stream record) becomes a
new column at the end (:func:`grown`), typed by its value the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from opendms.endpoints.dynamodb.decode import DOC, Item, type_of
from opendms.model import Column, ColumnType, Kind, Table

__all__ = ["KEY_KINDS", "KINDS", "columns_of", "grown", "table_of"]

KINDS: dict[str, Kind] = {
    "S": Kind.STRING,
    "N": Kind.DECIMAL,
    "B": Kind.BINARY,
    "BOOL": Kind.BOOL,
    "M": Kind.JSON,
    "L": Kind.JSON,
    "SS": Kind.JSON,
    "NS": Kind.JSON,
    "BS": Kind.JSON,
}
"""The kind of an attribute seen with one DynamoDB type."""

KEY_KINDS: dict[str, Kind] = {"S": Kind.STRING, "N": Kind.DECIMAL, "B": Kind.BINARY}
"""The kind of a key attribute by its ``AttributeType``."""


def _seen(items: Iterable[Item]) -> dict[str, set[str]]:
    """The DynamoDB types seen per attribute (``_doc`` members after top-level ones)."""
    seen: dict[str, set[str]] = {}
    for item in items:
        for name, value in item.items():
            if name == DOC and type_of(value) == "M":
                for member, inner in value["M"].items():
                    seen.setdefault(member, set()).add(type_of(inner))
            else:
                seen.setdefault(name, set()).add(type_of(value))
    return seen


def _kind(types: set[str]) -> Kind:
    known = types - {"NULL"}
    if len(known) == 1:
        return KINDS.get(known.pop(), Kind.JSON)
    return Kind.JSON


def columns_of(key: list[Column], items: Iterable[Item]) -> tuple[Column, ...]:
    """``key`` columns, then one column per other attribute of ``items``, by name."""
    keys = {c.name for c in key}
    seen = _seen(items)
    rest = [Column(n, ColumnType(_kind(seen[n]))) for n in sorted(seen) if n not in keys]
    return (*key, *rest)


def key_columns(description: Mapping[str, Any]) -> list[Column]:
    """The key attributes of a ``DescribeTable`` ``Table`` as columns (partition first)."""
    types = {a["AttributeName"]: a["AttributeType"] for a in description["AttributeDefinitions"]}
    schema = sorted(description["KeySchema"], key=lambda k: k["KeyType"] != "HASH")
    return [
        Column(k["AttributeName"], ColumnType(KEY_KINDS[types[k["AttributeName"]]]), False)
        for k in schema
    ]


def table_of(schema: str, description: Mapping[str, Any], items: Iterable[Item]) -> Table:
    """The :class:`Table` of a ``DescribeTable`` ``Table`` and its sampled items."""
    key = key_columns(description)
    return Table(
        schema,
        description["TableName"],
        columns_of(key, items),
        primary_key=tuple(c.name for c in key),
        estimated_rows=int(description.get("ItemCount", 0)),
    )


def grown(table: Table, items: Iterable[Item]) -> Table | None:
    """``table`` with a column for each attribute of ``items`` it lacks (None: none)."""
    have = {c.name for c in table.columns}
    seen = _seen(items)
    new = [Column(n, ColumnType(_kind(seen[n]))) for n in sorted(seen) if n not in have]
    if not new:
        return None
    return Table(
        table.schema,
        table.name,
        (*table.columns, *new),
        primary_key=table.primary_key,
        estimated_rows=table.estimated_rows,
    )
