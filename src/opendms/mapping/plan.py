"""Applying transformation rules to one described source table.

Semantics (all matching is case-sensitive, on *source* names):

* An object-locator always names source objects: a rule matches a schema,
  table or column by its source name, whatever earlier rules renamed it to.
* Rules apply in ascending rule-id order and compose: each name action works
  on the name left by the previous rules (``add-prefix`` then
  ``convert-lowercase`` lowercases the prefix too; of two ``rename`` rules on
  one object the higher rule-id wins).
* ``remove-column`` drops the column from the target; the source still reads
  it when an expression refers to it. When any ``include-column`` rule matches
  a table, only the columns matched by ``include-column`` rules are kept.
* ``add-column`` appends columns after the source columns, in rule-id order;
  later column rules do not match added columns (their locators name source
  columns). Expressions refer to source column names.
* ``define-primary-key`` names columns by source name (or by the name of an
  added column); they follow later renames. ``origin: unique-index`` adds a
  unique index instead. Without it, the source primary key is kept when all
  its columns survive and is dropped otherwise; source indexes are kept (with
  renamed columns) only when all their columns survive.
* ``add-before-image-columns`` appends, after the added columns, one column per
  source primary-key column (``pk-only``), per non-LOB column (``non-lob``) or per
  column (``all``) that reaches the target, named ``<prefix><target name><suffix>``
  with the column's type: the value before each CDC update, NULL otherwise.
* ``define-primary-key`` names the key (PostgreSQL targets create it under that name).
* ``table-tablespace`` / ``index-tablespace`` ``rename`` rules set the tablespace the
  table, and its key and indexes, are created in (PostgreSQL targets); the locator's
  ``table-tablespace-name`` / ``index-tablespace-name`` matches the source table's
  tablespace where the source has them (PostgreSQL: ``pg_default`` when none is set;
  other sources only match ``%``).
* Two target columns with one name, an empty name, or a table left without
  columns is a ConfigError naming the rule responsible.
* The table's LOB settings (:mod:`opendms.mapping.lobs`: the task's, or its
  table-settings rule's ``lob-settings``) apply last: with ``SupportLobs`` false the LOB
  columns that reach the target are left out of it (a LOB column of the primary key
  stays; ``lobs_dropped`` and ``lob_keys_kept`` name them), and in limited LOB mode every
  LOB output gets its ``lob_limit`` in bytes. The plan keeps the policy as ``lobs``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from opendms.errors import ConfigError
from opendms.mapping._cast import convert
from opendms.mapping.expressions import referenced_columns, validate_expression
from opendms.mapping.lobs import WHOLE, LobPolicy, is_lob
from opendms.mapping.rules import TransformationRule
from opendms.model import Column, ColumnType, FilterGroup, Index, Table, arrow_type

__all__ = ["OutputColumn", "TablePlan", "build_plan"]


@dataclass(frozen=True)
class OutputColumn:
    """One column of the target batch."""

    name: str
    type: ColumnType
    source: str | None  # source column it copies (None for add-column)
    expression: str | None  # add-column expression exactly as written, else None
    # add-before-image-columns: the source column whose value before a CDC update this
    # column holds (NULL in the full load and for inserts, as with DMS)
    before: str | None = None
    # limited LOB mode: a LOB value longer than this many bytes is cut (or, when it
    # cannot be, is a data error); None = copied whole
    lob_limit: int | None = None


@dataclass(frozen=True)
class TablePlan:
    """How one source table becomes its target table."""

    source: Table
    target: Table
    read_columns: tuple[str, ...]
    outputs: tuple[OutputColumn, ...]
    filters: tuple[FilterGroup, ...]
    # SupportLobs false: the source LOB columns left out of the target, and those kept
    # because they are part of the key
    lobs_dropped: tuple[str, ...] = ()
    lob_keys_kept: tuple[str, ...] = ()
    lobs: LobPolicy = WHOLE  # the table's LOB settings, as applied
    # Compiled evaluation state (see expressions.evaluate_outputs); never pickled.
    _cache: dict[str, Any] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_cache": {}}


@dataclass
class _Col:
    source: str | None
    name: str
    type: ColumnType
    nullable: bool = True
    expression: str | None = None
    before: str | None = None
    named_by: str = ""  # JSON path of the last rule that set the name
    removed: bool = False
    included: bool = False
    lob_dropped: bool = False


def new_name(name: str, rule: TransformationRule) -> str:
    """``name`` after one name action (rename, case, prefix, suffix)."""
    action, value, old = rule.action, rule.value or "", rule.old_value or ""
    if action == "rename":
        return value
    if action == "convert-lowercase":
        return name.lower()
    if action == "convert-uppercase":
        return name.upper()
    if action == "add-prefix":
        return value + name
    if action == "add-suffix":
        return name + value
    if action == "remove-prefix":
        return name[len(value) :] if name.startswith(value) else name
    if action == "remove-suffix":
        return name[: len(name) - len(value)] if name.endswith(value) else name
    if action == "replace-prefix":
        return value + name[len(old) :] if name.startswith(old) else name
    if action == "replace-suffix":
        return name[: len(name) - len(old)] + value if name.endswith(old) else name
    raise AssertionError(action)


class _Builder:
    def __init__(self, table: Table, where: str, lobs: LobPolicy = WHOLE) -> None:
        self.table = table
        self.where = where
        self.lobs = lobs
        self.schema = table.schema
        self.name = table.name
        self.cols = [_Col(c.name, c.name, c.type, c.nullable) for c in table.columns]
        self.added: list[_Col] = []
        self.pk_rule: TransformationRule | None = None
        self.unique: list[TransformationRule] = []
        self.include_rule = ""
        self.removal_rule = ""
        self.before_image: TransformationRule | None = None
        self.tablespace = ""
        self.index_tablespace = ""

    def fail(self, message: str, path: str) -> ConfigError:
        return ConfigError(f"table {self.table.qualified}: {message}", where=self.where, path=path)

    def renamed(self, name: str, rule: TransformationRule) -> str:
        result = new_name(name, rule)
        if not result:
            raise self.fail(f"{rule.action} leaves an empty name", rule.path)
        return result

    def apply(self, rule: TransformationRule) -> None:
        if rule.target in ("table-tablespace", "index-tablespace"):
            self.set_tablespace(rule)
        elif rule.action == "add-before-image-columns":
            self.before_image = rule
        elif rule.target == "schema":
            self.schema = self.renamed(self.schema, rule)
        elif rule.action == "define-primary-key":
            self.define_key(rule)
        elif rule.target == "table":
            self.name = self.renamed(self.name, rule)
        elif rule.action == "add-column":
            self.add_column(rule)
        else:
            self.column_rule(rule)

    def set_tablespace(self, rule: TransformationRule) -> None:
        if rule.tablespace is not None and not rule.tablespace.matches(self.table.tablespace):
            return
        assert rule.value is not None
        if rule.target == "table-tablespace":
            self.tablespace = rule.value
        else:
            self.index_tablespace = rule.value

    def define_key(self, rule: TransformationRule) -> None:
        assert rule.primary_key is not None
        if rule.primary_key.unique_index:
            self.unique.append(rule)
        else:
            self.pk_rule = rule

    def add_column(self, rule: TransformationRule) -> None:
        assert rule.value is not None and rule.data_type is not None
        if rule.expression is not None:
            validate_expression(
                rule.expression,
                self.table.columns,
                target=rule.data_type,
                where=self.where,
                path=f"{rule.path}.expression",
            )
        col = _Col(None, rule.value, rule.data_type, expression=rule.expression, named_by=rule.path)
        self.added.append(col)

    def column_rule(self, rule: TransformationRule) -> None:
        assert rule.column is not None
        for col in self.cols:
            if col.source is not None and rule.column.matches(col.source):
                self.column_action(col, rule)
        if rule.action == "include-column":
            self.include_rule = self.include_rule or rule.path

    def column_action(self, col: _Col, rule: TransformationRule) -> None:
        if rule.action == "remove-column":
            col.removed = True
            self.removal_rule = rule.path
        elif rule.action == "include-column":
            col.included = True
        elif rule.action == "change-data-type":
            assert rule.data_type is not None
            self.check_cast(col, rule.data_type, rule)
            col.type = rule.data_type
        else:
            col.name = self.renamed(col.name, rule)
            col.named_by = rule.path

    def check_cast(self, col: _Col, ctype: ColumnType, rule: TransformationRule) -> None:
        try:
            convert(pa.array([], arrow_type(col.type)), arrow_type(ctype))
        except pa.ArrowNotImplementedError as exc:
            message = f"column {col.source}: cannot convert {col.type} to {ctype}"
            raise self.fail(message, f"{rule.path}.data-type") from exc

    # -- result --------------------------------------------------------------

    def live(self) -> list[_Col]:
        kept = [c for c in self.cols if not c.removed]
        if self.include_rule:
            kept = [c for c in kept if c.included]
        if self.lobs.drop:
            kept = self.without_lobs(kept)
        cols = kept + self.added + self.before_columns(kept)
        if not cols and any(c.lob_dropped for c in self.cols):
            raise ConfigError(
                f"table {self.table.qualified}: every column is a LOB and "
                "TargetMetadata.SupportLobs is false",
                where="task_settings",
                path="$.task_settings.TargetMetadata.SupportLobs",
            )
        if not cols:
            raise self.fail("no column is left", self.include_rule or self.removal_rule)
        seen: dict[str, _Col] = {}
        for col in cols:
            if col.name in seen:
                other = seen[col.name]
                path = col.named_by or other.named_by
                raise self.fail(f"two target columns would be named {col.name!r}", path)
            seen[col.name] = col
        return cols

    def key_sources(self) -> set[str]:
        """Source (or added) columns a key is made of: the source primary key and the
        columns of define-primary-key rules."""
        keys = set(self.table.primary_key)
        for rule in [self.pk_rule, *self.unique]:
            if rule is not None and rule.primary_key is not None:
                keys.update(rule.primary_key.columns)
        return keys

    def without_lobs(self, kept: list[_Col]) -> list[_Col]:
        """SupportLobs false: the LOB columns left out (a key's stay)."""
        keys = self.key_sources()
        out = []
        for col in kept:
            if col.source is not None and is_lob(col.type) and col.source not in keys:
                col.lob_dropped = True
            else:
                out.append(col)
        return out

    def before_columns(self, kept: list[_Col]) -> list[_Col]:
        rule = self.before_image
        if rule is None or rule.before_image is None:
            return []
        spec = rule.before_image
        out = []
        for col in kept:
            if spec.column_filter == "pk-only" and col.source not in self.table.primary_key:
                continue
            if spec.column_filter == "non-lob" and is_lob(col.type):
                continue
            name = f"{spec.prefix}{col.name}{spec.suffix}"
            out.append(_Col(None, name, col.type, before=col.source, named_by=rule.path))
        return out

    def key_columns(self, names: Sequence[str], live: list[_Col], path: str) -> tuple[str, ...]:
        by_source = {c.source: c for c in self.cols}
        by_added = {c.name: c for c in self.added}
        live_ids = {id(c) for c in live}
        out: list[str] = []
        for i, name in enumerate(names):
            col = by_source.get(name) or by_added.get(name)
            if col is None:
                raise self.fail(f"key column {name!r} does not exist", f"{path}[{i}]")
            if id(col) not in live_ids:
                raise self.fail(f"key column {name!r} is removed", f"{path}[{i}]")
            out.append(col.name)
        return tuple(out)

    def key_name(self) -> str:
        """The primary key's name: the define-primary-key rule's (else the target's own)."""
        if self.pk_rule is not None and self.pk_rule.primary_key is not None:
            return self.pk_rule.primary_key.name
        return ""

    def primary_key(self, live: list[_Col]) -> tuple[str, ...]:
        if self.pk_rule is not None and self.pk_rule.primary_key is not None:
            pk = self.pk_rule.primary_key
            return self.key_columns(pk.columns, live, pk.path)
        names = {c.source: c.name for c in live if c.source is not None}
        if all(k in names for k in self.table.primary_key):
            return tuple(names[k] for k in self.table.primary_key)
        return ()

    def indexes(self, live: list[_Col]) -> tuple[Index, ...]:
        names = {c.source: c.name for c in live if c.source is not None}
        out = [
            Index(ix.name, tuple(names[c] for c in ix.columns), ix.unique)
            for ix in self.table.indexes
            if all(c in names for c in ix.columns)
        ]
        for rule in self.unique:
            assert rule.primary_key is not None
            pk = rule.primary_key
            out.append(Index(pk.name, self.key_columns(pk.columns, live, pk.path), unique=True))
        return tuple(out)

    def plan(self, filters: tuple[FilterGroup, ...]) -> TablePlan:
        live = self.live()
        target = Table(
            schema=self.schema,
            name=self.name,
            columns=tuple(Column(c.name, c.type, c.nullable) for c in live),
            primary_key=self.primary_key(live),
            indexes=self.indexes(live),
            estimated_rows=self.table.estimated_rows,
            partitions=self.table.partitions,
            primary_key_name=self.key_name(),
            tablespace=self.tablespace,
            index_tablespace=self.index_tablespace,
        )
        limit = self.lobs.max_bytes
        outputs = tuple(
            OutputColumn(
                c.name,
                c.type,
                c.source,
                c.expression,
                c.before,
                limit if limit is not None and is_lob(c.type) else None,
            )
            for c in live
        )
        needed = {c.source for c in live if c.source is not None}
        for col in self.added:
            if col.expression is not None:
                needed.update(referenced_columns(col.expression))
        read = tuple(c.name for c in self.table.columns if c.name in needed)
        dropped = tuple(c.source for c in self.cols if c.lob_dropped and c.source is not None)
        kept: tuple[str, ...] = ()
        if self.lobs.drop:
            kept = tuple(c.source for c in live if c.source is not None and is_lob(c.type))
        return TablePlan(self.table, target, read, outputs, filters, dropped, kept, self.lobs)


def build_plan(
    table: Table,
    rules: Sequence[TransformationRule],
    filters: tuple[FilterGroup, ...],
    where: str,
    lobs: LobPolicy = WHOLE,
) -> TablePlan:
    """Apply the transformation ``rules`` that match ``table`` in rule-id order, then
    the table's LOB settings ``lobs``."""
    builder = _Builder(table, where, lobs)
    for rule in sorted(rules, key=lambda r: r.rule_id):
        if rule.matches(table.schema, table.name):
            builder.apply(rule)
    return builder.plan(filters)
