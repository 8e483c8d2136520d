"""DynamoDB as federated queries read it (:mod:`opendms.query`): ``Query`` when the
partition key is bound by equality (one ``Query`` per value of an ``IN``), with a sort
key condition when one fits, else ``Scan``; predicates DynamoDB decides as DuckDB does
go into the ``FilterExpression``, the columns into the ``ProjectionExpression``.

What is pushed, so that DynamoDB never drops an item the query wants:

* key attributes have one type (their ``AttributeDefinitions``): text (``S``) compares
  by UTF-8 bytes as DuckDB does, numbers (``N``) numerically, so every comparison,
  ``IN``, ``BETWEEN`` and a prefix ``LIKE 'abc%'`` (``begins_with``) is pushed;
* other attributes may hold another type in some items: a number column reads such a
  value as NULL (so its comparisons are pushed), a text column reads it as JSON text
  (so only ``=`` and ``IN`` with literals that are not JSON are pushed); ``IS NOT
  NULL`` is ``attribute_exists``; nothing else is, nor anything when the table keeps
  columns in a ``_doc`` map;
* numbers are pushed when written as plain decimals (``12``, ``-3.5``).

``LIMIT`` stops reading once that many items arrived when every predicate was pushed
(and is the page size when there is no filter).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import pyarrow as pa

from opendms.endpoints.base import EndpointURL
from opendms.endpoints.dynamodb.decode import DOC
from opendms.endpoints.dynamodb.infer import table_of
from opendms.endpoints.dynamodb.scan import ScanSpec, pages, scan_pages
from opendms.endpoints.dynamodb.settings import DynamoSettings
from opendms.endpoints.dynamodb.source import SCHEMA, DynamoSource, to_batch
from opendms.endpoints.query.plan import Scan, TableName
from opendms.endpoints.query.predicates import Literal, Predicate
from opendms.endpoints.query.sources import Request, find_ref, limit_of, read_columns
from opendms.model import Kind, ReadPlan, Table

__all__ = ["DynamoQuerySource"]

BATCH_ROWS = 65536
_MAX_IN = 100  # DynamoDB's limit on IN operands, and our limit on Query calls per scan
_NUMBER = re.compile(r"-?\d+(\.\d+)?")
_PREFIX = re.compile(r"[^%_]+%")
_COMPARE = ("=", "<>", "<", "<=", ">", ">=")
_KEY_OPS = ("=", "<", "<=", ">", ">=", "between", "like")


@dataclass
class _Expression:
    """The names and values of one DynamoDB expression set."""

    names: dict[str, str] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)

    def name(self, column: str) -> str:
        for alias, known in self.names.items():
            if known == column:
                return alias
        alias = f"#n{len(self.names)}"
        self.names[alias] = column
        return alias

    def value(self, literal: Literal, kind: Kind, prefix: bool = False) -> str:
        alias = f":v{len(self.values)}"
        text = literal.text[:-1] if prefix else literal.text
        typed: dict[str, Any] = {"BOOL": text == "true"} if kind is Kind.BOOL else {}
        self.values[alias] = typed or ({"N": text} if kind is Kind.DECIMAL else {"S": text})
        return alias

    def condition(self, p: Predicate, kind: Kind) -> str:
        attr = self.name(p.column)
        values = [self.value(v, kind, p.op == "like") for v in p.values]
        if p.op in _COMPARE:
            return f"{attr} {p.op} {values[0]}"
        if p.op == "between":
            return f"{attr} BETWEEN {values[0]} AND {values[1]}"
        if p.op == "like":
            return f"begins_with({attr}, {values[0]})"
        if p.op == "is not null":
            return f"attribute_exists({attr})"
        found = f"{attr} IN ({', '.join(values)})"
        return f"NOT ({found})" if p.op == "not in" else found

    def arguments(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.names:
            out["ExpressionAttributeNames"] = dict(self.names)
        if self.values:
            out["ExpressionAttributeValues"] = dict(self.values)
        return out


def _literals_fit(p: Predicate, kind: Kind) -> bool:
    if kind is Kind.DECIMAL:
        return all(v.kind == "number" and _NUMBER.fullmatch(v.text) for v in p.values)
    if kind is Kind.STRING:
        return all(v.kind == "text" for v in p.values)
    return kind is Kind.BOOL and all(v.kind == "bool" for v in p.values)


def _key_filter(p: Predicate, kind: Kind) -> bool:
    """Whether a key attribute's predicate is decided by DynamoDB as by DuckDB."""
    if p.op == "like":
        return kind is Kind.STRING and bool(_PREFIX.fullmatch(p.values[0].text))
    ok = p.op in (*_COMPARE, "between", "in", "not in") and kind is not Kind.BOOL
    return ok and _literals_fit(p, kind) and len(p.values) <= _MAX_IN


def _attribute_filter(p: Predicate, kind: Kind) -> bool:
    """Whether a non-key attribute's predicate is (see the module docstring)."""
    if p.op == "is not null":
        return True
    if kind is Kind.STRING:
        return (
            p.op in ("=", "in")
            and _literals_fit(p, kind)
            and not any(_is_json(v.text) for v in p.values)
        )
    if kind is Kind.BOOL:
        return p.op in ("=", "<>") and _literals_fit(p, kind)
    return kind is Kind.DECIMAL and p.op != "like" and _key_filter(p, kind)


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class _Table:
    """What a described table adds: its key attributes, and whether items keep
    columns in a ``_doc`` map."""

    partition: str
    sort: str
    documents: bool


class DynamoQuerySource:
    """The tables of one ``dynamodb://`` endpoint. API calls are counted by botocore
    event hooks on its client (``before-parameter-build``), by operation and table."""

    def __init__(self, url: EndpointURL, settings: DynamoSettings) -> None:
        self.source = DynamoSource(url, settings)
        self.settings = settings
        self.counted: Counter[tuple[str, str]] = Counter()
        self.client = self.source.clients.dynamodb()
        self.client.meta.events.register("before-parameter-build.dynamodb", self._count)
        self.tables: dict[str, _Table] = {}

    def _count(self, model: Any, params: Mapping[str, Any], **_: Any) -> None:
        self.counted[(model.name, str(params.get("TableName", "")))] += 1

    def describe(self, name: TableName) -> Table:
        ref = find_ref(self.source, name)
        description = self.source.description(ref.name)
        sample = self.source.sample(ref.name, self.settings.SampleItems)
        keys = {k["KeyType"]: k["AttributeName"] for k in description["KeySchema"]}
        documents = any(DOC in item for item in sample)
        self.tables[ref.name] = _Table(keys["HASH"], keys.get("RANGE", ""), documents)
        return table_of(SCHEMA, description, sample)

    def request(self, scan: Scan, table: Table) -> Request:
        info = self.tables[table.name]
        kinds = {c.name: c.type.kind for c in table.columns}
        bound = self._bound(scan, info, kinds)
        used: list[Predicate] = [bound] if bound else []
        key = _Expression()
        if bound is not None:
            sort = self._sort_condition(scan, info, kinds)
            used += [sort] if sort else []
        filters = self._filters(scan, info, kinds, bound is not None)
        pushed = tuple(p for p in scan.predicates if p in used or p in filters)
        limit = limit_of(scan, pushed)
        columns = read_columns(scan, table)
        calls = self._calls(bound, used[1:], filters, kinds, key)
        page = limit if limit is not None and not filters else 0
        text = "\n".join(_describe(op, table.name, args, columns, page) for op, args in calls)
        return Request(scan, table, columns, pushed, limit, text, (calls, page))

    def _bound(self, scan: Scan, info: _Table, kinds: Mapping[str, Kind]) -> Predicate | None:
        for p in scan.predicates:
            kind = kinds.get(p.column, Kind.BINARY)
            if p.column == info.partition and p.op in ("=", "in") and _key_filter(p, kind):
                return p
        return None

    def _sort_condition(
        self, scan: Scan, info: _Table, kinds: Mapping[str, Kind]
    ) -> Predicate | None:
        for p in scan.predicates:
            kind = kinds.get(p.column, Kind.BINARY)
            if p.column == info.sort and p.op in _KEY_OPS and _key_filter(p, kind):
                return p
        return None

    def _filters(
        self, scan: Scan, info: _Table, kinds: Mapping[str, Kind], query: bool
    ) -> list[Predicate]:
        """Predicates for the FilterExpression (a Query's may not name key attributes)."""
        out = []
        for p in scan.predicates:
            kind = kinds.get(p.column, Kind.BINARY)
            if p.column in (info.partition, info.sort):
                ok = not query and p.op != "is not null" and _key_filter(p, kind)
            else:
                ok = not info.documents and _attribute_filter(p, kind)
            out += [p] if ok else []
        return out

    def _calls(
        self,
        bound: Predicate | None,
        sort: list[Predicate],
        filters: list[Predicate],
        kinds: Mapping[str, Kind],
        expr: _Expression,
    ) -> list[tuple[str, dict[str, Any]]]:
        """(operation, arguments) of each call: a Query per bound key value, or a Scan."""
        conditions = [expr.condition(p, kinds[p.column]) for p in filters]
        common = {"FilterExpression": " AND ".join(conditions)} if conditions else {}
        if bound is None:
            return [("scan", {**common, **expr.arguments()})]
        out = []
        for literal in bound.values:
            each = _Expression(dict(expr.names), dict(expr.values))
            equal = Predicate(bound.column, "=", (literal,))
            parts = [each.condition(p, kinds[p.column]) for p in (equal, *sort)]
            key = {"KeyConditionExpression": " AND ".join(parts)}
            out.append(("query", {**key, **common, **each.arguments()}))
        return out

    def read(self, request: Request) -> Iterator[pa.RecordBatch]:
        table = request.table
        calls, page = request.payload
        plan = ReadPlan(table, request.columns)
        before = self.counted.copy()
        items: Iterator[Any] = (
            item for op, args in calls for item in self._items(table, request, op, args, page)
        )
        if request.limit is not None:
            items = islice(items, request.limit)
        while chunk := list(islice(items, BATCH_ROWS)):
            yield to_batch(plan, chunk)
        for (op, name), count in (self.counted - before).items():
            if name == table.name:
                request.calls[op] = request.calls.get(op, 0) + count

    def _items(
        self, table: Table, request: Request, op: str, args: dict[str, Any], page: int
    ) -> Iterator[Any]:
        info = self.tables[table.name]
        attributes = (*request.columns, DOC) if info.documents else request.columns
        segments = max(1, self.settings.ScanSegments) if op == "scan" else 1
        spec = ScanSpec(
            self.client, self.source.where, table.name, segments, page, attributes, True, op, args
        )
        found = scan_pages(spec) if segments > 1 else pages(spec, 0)
        for items in found:
            yield from items

    def close(self) -> None:
        self.source.close()


def _describe(
    op: str, table: str, args: Mapping[str, Any], columns: tuple[str, ...], page: int
) -> str:
    """One call as ``--explain`` shows it."""
    shown = {"TableName": table, **args, "ProjectionExpression": ", ".join(columns)}
    if page:
        shown["Limit"] = page
    return f"{'Query' if op == 'query' else 'Scan'} {json.dumps(shown)}"
