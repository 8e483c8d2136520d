"""How the rows of one target table become DynamoDB items (:class:`ItemShape`).

With an ``object-mapping`` rule (:mod:`opendms.mapping.objectmap`) the item is shaped as
DMS does: mapped attributes from their templates, the other columns not excluded as
top-level attributes (``map-record-to-record``) or inside the map ``_doc``
(``map-record-to-document``). NULL values have no attribute (in ``_doc`` too). A key
attribute may name a mapped attribute or a column; a key column is a top-level attribute
and is not repeated in ``_doc``.

Without a rule, every column is a top-level attribute and the primary key is the table
key: one column is the partition key, two are the partition and sort key (in key
order); more columns, or no primary key, need an object-mapping rule (ConfigError).
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from opendms.endpoints.dynamodb.codec import (
    MAX_ITEM_BYTES,
    AttributeValue,
    CodecError,
    encode,
    item_size,
    number_text,
    text_of,
    value_size,
    wide,
)
from opendms.errors import ConfigError
from opendms.mapping.objectmap import DOC_ATTRIBUTE, AttributeMapping, ObjectMappingRule
from opendms.model import ColumnType, Kind, Table

__all__ = ["Item", "ItemShape", "KeyAttribute"]

Item = dict[str, AttributeValue]
Row = dict[str, Any]

_PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")
_KEY_TYPES: dict[Kind, str] = {
    Kind.INT16: "N",
    Kind.INT32: "N",
    Kind.INT64: "N",
    Kind.FLOAT32: "N",
    Kind.FLOAT64: "N",
    Kind.DECIMAL: "N",
    Kind.BINARY: "B",
    Kind.STRING: "S",
    Kind.ENUM: "S",
    Kind.UUID: "S",
    Kind.DATE: "S",
    Kind.TIME: "S",
    Kind.TIMESTAMP: "S",
    Kind.TIMESTAMPTZ: "S",
    Kind.INTERVAL: "S",
}
"""The DynamoDB key type (S, N or B) of a key column's kind (others cannot be keys)."""
_TRUE = frozenset({"true", "t", "1", "y", "yes"})


@dataclass(frozen=True)
class KeyAttribute:
    """One attribute of the table key: its name and DynamoDB type (S, N or B)."""

    name: str
    type: str


class ItemShape:
    """The items of one target table: built from its rows and its object mapping."""

    def __init__(self, table: Table, rule: ObjectMappingRule | None) -> None:
        self.table, self.rule = table, rule
        self.types = {c.name: c.type for c in table.columns}
        self.where = f"object-mapping {rule.path}" if rule else ""
        if rule is not None:
            self._check_columns(rule)
        self.key = self._key_schema()
        names = [k.name for k in self.key]
        self.key_names = tuple(names)
        self.key_columns = frozenset(n for n in names if rule is None or rule.attribute(n) is None)

    # -- checks ------------------------------------------------------------------

    def _fail(self, message: str, path: str = "") -> ConfigError:
        table = f"table {self.table.name}: {message}"
        return ConfigError(table, where="table-mappings" if path else "", path=path)

    def _check_columns(self, rule: ObjectMappingRule) -> None:
        params = f"{rule.path}.mapping-parameters"
        for i, name in enumerate(rule.exclude):
            if name not in self.types:
                raise self._fail(f"no column {name!r} to exclude", f"{params}.exclude-columns[{i}]")
        for attr in rule.attributes:
            for name in attr.columns():
                if name not in self.types:
                    raise self._fail(f"no column {name!r} for '${{{name}}}'", f"{attr.path}.value")

    def _key_schema(self) -> tuple[KeyAttribute, ...]:
        rule = self.rule
        if rule is not None and rule.partition_key is not None:
            names = [rule.partition_key] + ([rule.sort_key] if rule.sort_key else [])
            return tuple(self._key_attribute(n, i) for i, n in enumerate(names))
        pk = self.table.primary_key
        if not pk:
            raise self._fail(
                "it has no primary key, so its DynamoDB key is unknown: add an object-mapping "
                "rule with a 'partition-key-name'"
            )
        if len(pk) > 2:
            raise self._fail(
                f"its primary key has {len(pk)} columns ({', '.join(pk)}); a DynamoDB key has "
                "a partition key and at most a sort key: add an object-mapping rule that names them"
            )
        return tuple(self._key_attribute(n, i) for i, n in enumerate(pk))

    def _key_attribute(self, name: str, index: int) -> KeyAttribute:
        path = ""
        if self.rule is not None:
            which = "partition-key-name" if index == 0 else "sort-key-name"
            path = f"{self.rule.path}.mapping-parameters.{which}"
            attr = self.rule.attribute(name)
            if attr is not None:
                return KeyAttribute(name, self._mapped_key_type(attr, path))
            if name in self.rule.exclude:
                raise self._fail(f"key column {name!r} is excluded", path)
        ctype = self.types.get(name)
        if ctype is None:
            raise self._fail(f"key {name!r} is neither a mapped attribute nor a column", path)
        found = "S" if wide(ctype) else _KEY_TYPES.get(ctype.kind)
        if found is None:
            raise self._fail(
                f"key column {name!r} is {ctype}: a key is a string, number or binary", path
            )
        return KeyAttribute(name, found)

    def _mapped_key_type(self, attr: AttributeMapping, path: str) -> str:
        if attr.kind == "scalar" and attr.sub_type in ("string", "number"):
            return "S" if attr.sub_type == "string" else "N"
        raise self._fail(
            f"key attribute {attr.name!r} is {attr.sub_type}: a key is a string or number", path
        )

    # -- items -------------------------------------------------------------------

    def item(self, row: Row) -> Item:
        """The item of one row (canonical Python values by column name); CodecError when
        a value cannot be held or the item is too large."""
        item = self._plain(row) if self.rule is None else self._mapped(row, self.rule)
        for key in self.key:
            found = item.get(key.name)
            if found is None or found == {"S": ""} or found == {"B": b""}:
                raise CodecError("a key attribute cannot be empty (NULL)", key.name)
            if key.type not in found:
                raise CodecError(f"a key attribute of type {key.type} is expected", key.name)
        size = item_size(item)
        if size > MAX_ITEM_BYTES:
            raise CodecError(
                f"the item is {size} bytes; DynamoDB holds at most {MAX_ITEM_BYTES}",
                largest_attribute(item),
            )
        return item

    def key_of(self, item: Item) -> Item:
        return {k.name: item[k.name] for k in self.key}

    def row_key(self, row: Row) -> Item:
        """The key of a row's item (built as its item is)."""
        return self.key_of(self.item(row))

    def key_sources(self, parts: int = 2) -> frozenset[str]:
        """The columns the first ``parts`` key attributes are made of."""
        out: set[str] = set()
        for key in self.key[:parts]:
            attr = self.rule.attribute(key.name) if self.rule else None
            out.update(attr.columns() if attr else [key.name])
        return frozenset(out)

    def key_from(self, row: Row, missing: object = None, parts: int = 2) -> Item | None:
        """The key (its first ``parts`` attributes) of the item of a partial row (a
        change's old key or after-image); None when a column the key is made of is not
        in it (or is ``missing``)."""
        if any(c not in row or row[c] is missing for c in self.key_sources(parts)):
            return None
        out: Item = {}
        for key in self.key[:parts]:
            attr = self.rule.attribute(key.name) if self.rule else None
            av = (
                self._attribute(attr, row)
                if attr
                else _encoded(key.name, self.types[key.name], row[key.name])
            )
            if av is None or av in ({"S": ""}, {"B": b""}):
                raise CodecError("a key attribute cannot be empty (NULL)", key.name)
            out[key.name] = av
        return out

    def holds(self, item: Item, row: Row) -> bool:
        """Whether ``item`` holds the values of a partial row (the columns it stores;
        numbers compared by value, as DynamoDB normalises them)."""
        rule = self.rule
        doc = item.get(DOC_ATTRIBUTE, {}).get("M", {})
        for name, value in row.items():
            if name not in self.types or (rule and (name in rule.exclude or rule.attribute(name))):
                continue
            want = _encoded(name, self.types[name], value)
            if not _same(item.get(name, doc.get(name)), want):
                return False
        return True

    def changes(
        self, row: Row, unchanged: object
    ) -> tuple[dict[tuple[str, ...], AttributeValue], list[tuple[str, ...]]]:
        """What an update of a partial row sets and removes, by attribute path (a column
        of ``_doc``: ``("_doc", column)``); values ``unchanged`` and the attributes
        made of them are left alone, and so are the key attributes."""
        sets: dict[tuple[str, ...], AttributeValue] = {}
        removes: list[tuple[str, ...]] = []
        rule = self.rule
        mapped = {a.name for a in rule.attributes} if rule else set()
        for name, value in row.items():
            if value is unchanged or name in self.key_names or name in mapped:
                continue
            if name not in self.types or (rule is not None and name in rule.exclude):
                continue
            doc = rule is not None and rule.to_document and name not in self.key_columns
            path = (DOC_ATTRIBUTE, name) if doc else (name,)
            av = _encoded(name, self.types[name], value)
            if av is None:
                removes.append(path)
            else:
                sets[path] = av
        for attr in rule.attributes if rule else ():
            if attr.name in self.key_names or any(
                row.get(c, unchanged) is unchanged for c in attr.columns()
            ):
                continue
            av = self._attribute(attr, row)
            if av is None:
                removes.append((attr.name,))
            else:
                sets[(attr.name,)] = av
        return sets, removes

    def _plain(self, row: Row) -> Item:
        out: Item = {}
        for name, ctype in self.types.items():
            av = _encoded(name, ctype, row.get(name))
            if av is not None:
                out[name] = av
        return out

    def _mapped(self, row: Row, rule: ObjectMappingRule) -> Item:
        out: Item = {}
        doc: Item = {}
        mapped = {a.name for a in rule.attributes}
        for name, ctype in self.types.items():
            if name in rule.exclude or name in mapped:
                continue
            av = _encoded(name, ctype, row.get(name))
            if av is None:
                continue
            into = doc if rule.to_document and name not in self.key_columns else out
            into[name] = av
        for attr in rule.attributes:
            av = self._attribute(attr, row)
            if av is not None:
                out[attr.name] = av
        if rule.to_document:
            out[DOC_ATTRIBUTE] = {"M": doc}
        return out

    def _attribute(self, attr: AttributeMapping, row: Row) -> AttributeValue | None:
        if attr.kind == "document":
            filled: AttributeValue = _fill_document(attr.value, row)
            return filled
        template: str = attr.value
        only = _PLACEHOLDER.fullmatch(template)
        if only is not None:
            value = row.get(only.group(1))
            if value is None:
                return None  # NULL: no attribute, as for a column
            return _scalar(attr, value, self.types[only.group(1)])
        return _scalar(attr, _fill(template, row), None)


def _same(a: AttributeValue | None, b: AttributeValue | None) -> bool:
    """Whether two AttributeValues hold the same value (numbers by value, deeply)."""
    if a is None or b is None or a.keys() != b.keys():
        return a is None and b is None
    kind = next(iter(a))
    if kind == "N":
        return bool(Decimal(a["N"]) == Decimal(b["N"]))
    if kind == "M":
        return a["M"].keys() == b["M"].keys() and all(
            _same(v, b["M"][k]) for k, v in a["M"].items()
        )
    if kind == "L":
        pairs = zip(a["L"], b["L"], strict=False)
        return len(a["L"]) == len(b["L"]) and all(_same(x, y) for x, y in pairs)
    return a == b


def _encoded(name: str, ctype: ColumnType, value: Any) -> AttributeValue | None:
    try:
        return encode(ctype, value)
    except CodecError as exc:
        raise CodecError(str(exc), name) from None


def _fill(template: str, row: Row) -> str:
    return _PLACEHOLDER.sub(lambda m: text_of(row.get(m.group(1))), template)


def _scalar(attr: AttributeMapping, value: Any, ctype: ColumnType | None) -> AttributeValue:
    """A scalar attribute: ``value`` is a column's own value when the template is one
    placeholder (``ctype`` its type), else the filled template's text."""
    try:
        if attr.sub_type == "number":
            number = value if isinstance(value, int | float | Decimal) else str(value)
            return {"N": number_text(number)}
        if attr.sub_type == "boolean":
            if isinstance(value, bool):
                return {"BOOL": value}
            return {"BOOL": text_of(value).strip().lower() in _TRUE}
    except CodecError as exc:
        raise CodecError(str(exc), attr.name) from None
    return {"S": text_of(value) if ctype is not None else value}


def _fill_document(value: Any, row: Row) -> Any:
    """A DynamoDB JSON template with the placeholders of its leaf strings filled (an N
    leaf must then be a number)."""
    kind, inner = next(iter(value.items()))
    if kind == "M":
        return {"M": {k: _fill_document(v, row) for k, v in inner.items()}}
    if kind == "L":
        return {"L": [_fill_document(v, row) for v in inner]}
    if kind == "N":
        return {"N": number_text(_fill(inner, row))}
    if kind == "S":
        return {"S": _fill(inner, row)}
    if kind == "B":
        return {"B": base64.b64decode(_fill(inner, row))}
    if kind in ("SS", "NS"):
        return {kind: [_fill(v, row) for v in inner]}
    return {kind: inner}


def largest_attribute(item: Item) -> str:
    """The attribute that takes the most bytes (named by an oversized item's error)."""
    return max(item, key=lambda n: value_size(item[n]), default="")
