"""Planning a federated query (I/O-free): which tables it reads, which of their columns,
the predicates each source may apply, and the query DuckDB runs over what they send.

The query is DuckDB SQL whose tables are named ``endpoint.schema.table`` (a lake's
change log: ``endpoint.schema."table$changes"``). :func:`parse` reads it and finds those
tables; once their columns are known, :func:`plan` gives one :class:`Scan` per table
reference (a table named twice is read twice, each with its own predicates) and the
query rewritten onto the Arrow tables DuckDB is given (``__q0``, ``__q1``, ...).

What may be pushed to a scan is decided per scope (each SELECT of the query):

* a ``WHERE`` conjunct, or an ``ON`` conjunct of an inner join, that refers to one table
  of the scope and compares one of its columns with literals (``=``, ``<>``, ``<``,
  ``<=``, ``>``, ``>=``, ``IN``, ``NOT IN``, ``BETWEEN``, ``IS [NOT] NULL``, ``LIKE``);
* for a table on the nullable side of an outer join, only the ``WHERE`` conjuncts that
  reject NULL (not ``IS NULL``: a row the source drops would come back as NULLs);
* an ``ON`` conjunct of a ``LEFT JOIN`` about its right table (the joined one);
* ``LIMIT`` (plus ``OFFSET``) when the query is one table and nothing else: no join,
  grouping, aggregate, window, ``DISTINCT`` or ``ORDER BY``; a source applies it only
  when it applies every conjunct of the ``WHERE`` too (:attr:`Scan.complete`).

Everything else (``OR`` across tables, functions of columns, comparisons between
columns, subqueries) stays in DuckDB only. Pushed predicates stay in DuckDB's query as
well, so a source that returns more rows than asked never changes the answer.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import sqlglot
from sqlglot import exp
from sqlglot.errors import OptimizeError, ParseError, SqlglotError
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import Scope, traverse_scope

from opendms.endpoints.query.predicates import Predicate, predicate_of
from opendms.errors import ConfigError

__all__ = ["CHANGES", "Query", "Scan", "TableName", "parse", "plan"]

DIALECT = "duckdb"
CHANGES = "$changes"
"""The suffix naming a lake table's change log instead of its current rows."""


@dataclass(frozen=True)
class TableName:
    """A table as the query names it: ``endpoint.schema.table``; ``changes``: the
    ``$changes`` log of a lake table."""

    endpoint: str
    schema: str
    table: str
    changes: bool = False

    def __str__(self) -> str:
        suffix = CHANGES if self.changes else ""
        return f"{self.endpoint}.{self.schema}.{self.table}{suffix}"


@dataclass
class Scan:
    """One table reference of the query: what DuckDB calls its rows (``register``), the
    columns the query uses, the predicates a source may apply and the row ``limit`` it
    may stop at when it applies all of them and the scan is ``complete`` (the WHERE is
    nothing but those predicates)."""

    name: TableName
    register: str
    columns: tuple[str, ...] = ()
    predicates: tuple[Predicate, ...] = ()
    limit: int | None = None
    complete: bool = False
    nullable: bool = False


@dataclass(frozen=True)
class Query:
    """A parsed query and the source tables it names, in order of appearance."""

    tree: exp.Query
    tables: tuple[TableName, ...]
    ctes: frozenset[str] = field(default_factory=frozenset)


def parse(sql: str) -> Query:
    """The query, or a :class:`ConfigError` with the line and column of a syntax error,
    or naming a table not written ``endpoint.schema.table``."""
    try:
        tree = sqlglot.parse_one(sql, read=DIALECT)
    except ParseError as exc:
        raise ConfigError(f"SQL syntax error: {_parse_error(exc)}") from None
    except SqlglotError as exc:
        raise ConfigError(f"SQL syntax error: {exc}") from None
    if not isinstance(tree, exp.Query):
        raise ConfigError(f"only queries can be run (SELECT ...), not {tree.key.upper()}")
    ctes = frozenset(cte.alias_or_name.casefold() for cte in tree.find_all(exp.CTE))
    return Query(tree, tuple(_name(t) for t in _sources(tree, ctes)), ctes)


def _parse_error(exc: ParseError) -> str:
    if not exc.errors:
        return str(exc)
    first = exc.errors[0]
    return f"{first.get('description')} at line {first.get('line')}, column {first.get('col')}"


def _sources(tree: exp.Expr, ctes: frozenset[str]) -> Iterator[exp.Table]:
    """The query's tables that name an endpoint (not CTEs, not table functions)."""
    for table in tree.find_all(exp.Table):
        if not isinstance(table.this, exp.Identifier):
            continue  # a table function: range(10), read_parquet('f')
        if not table.args.get("db") and table.name.casefold() in ctes:
            continue
        yield table


def _name(table: exp.Table) -> TableName:
    if not (table.catalog and table.db):
        raise ConfigError(
            f"table {table.sql(DIALECT)!r}: name tables as ENDPOINT.SCHEMA.TABLE "
            "(an --endpoint NAME, then the schema and table on it)"
        )
    name = table.name
    changes = name.endswith(CHANGES) and len(name) > len(CHANGES)
    base = name[: -len(CHANGES)] if changes else name
    return TableName(table.catalog, table.db, base, changes)


def plan(query: Query, columns: Sequence[Sequence[str]]) -> tuple[list[Scan], str]:
    """One scan per table of ``query`` (``columns[i]``: the columns of its table ``i``)
    and the DuckDB SQL reading their registered Arrow tables."""
    scans = [Scan(name, f"__q{i}") for i, name in enumerate(query.tables)]
    run = _onto_registered(query.tree.copy(), query.ctes)
    qualified = _qualified(query, columns)
    names = {s.register: i for i, s in enumerate(scans)}
    for scope in traverse_scope(qualified):
        _visit(scope, scans, names, columns)
    _limit(qualified, scans, names)
    return scans, run.sql(DIALECT)


def _onto_registered(tree: exp.Expr, ctes: frozenset[str]) -> exp.Query:
    """``tree`` with its i-th source table replaced by ``__qi``, still called by the name
    the query uses (its alias, else its table name)."""
    for i, table in enumerate(list(_sources(tree, ctes))):
        alias = table.alias or table.name
        new = exp.to_table(f"__q{i}")
        new.set("alias", exp.TableAlias(this=exp.to_identifier(alias, quoted=True)))
        table.replace(new)
    assert isinstance(tree, exp.Query)
    return tree


def _qualified(query: Query, columns: Sequence[Sequence[str]]) -> exp.Query:
    """The query on ``__qi`` tables with every column qualified by its table's alias."""
    tree = _onto_registered(query.tree.copy(), query.ctes)
    schema: dict[str, object] = {
        f"__q{i}": {c: "TEXT" for c in cols} for i, cols in enumerate(columns)
    }
    try:
        done = qualify(tree, schema=schema, dialect=DIALECT, validate_qualify_columns=True)
    except OptimizeError as exc:
        raise ConfigError(f"query: {exc}") from None
    assert isinstance(done, exp.Query)
    return done


def _visit(
    scope: Scope, scans: list[Scan], names: Mapping[str, int], columns: Sequence[Sequence[str]]
) -> None:
    """Add what ``scope`` (one SELECT) uses of each scan: columns and predicates."""
    for column in scope.columns:
        index = _owner(scope, column.table, names)
        if index is not None:
            real = _real(column.name, columns[index])
            if real is not None and real not in scans[index].columns:
                scans[index].columns += (real,)
    select = scope.expression
    if not isinstance(select, exp.Select):
        return
    nullable = _nullable_aliases(select)
    for alias in nullable:
        index = _local(scope, alias, names)
        if index is not None:
            scans[index].nullable = True
    where = _where(select)
    pushed = _push_conjuncts(scope, where, nullable, scans, names, columns)
    edges = _equalities(scope, where, names, columns)
    for join in select.args.get("joins") or []:
        on, kind = join.args.get("on"), (join.kind or "").upper()
        if on is None or join.side in ("RIGHT", "FULL") or kind in ("ASOF", "POSITIONAL"):
            continue
        if join.side == "LEFT" or kind == "ANTI":  # only the joined table's rows are cut
            only = join.this.alias_or_name
            _push_conjuncts(scope, _conjuncts(on), set(), scans, names, columns, only)
            edges += _equalities(scope, _conjuncts(on), names, columns, only)
        else:
            pushed += _push_conjuncts(scope, _conjuncts(on), nullable, scans, names, columns)
            edges += _equalities(scope, _conjuncts(on), names, columns)
    _derive(scans, pushed, edges)


Column = tuple[int, str]  # a scan and one of its columns
Edge = tuple[Column, Column, str]  # values of the first are those of the second; the SQL


def _equalities(
    scope: Scope,
    conjuncts: list[exp.Expr],
    names: Mapping[str, int],
    columns: Sequence[Sequence[str]],
    only: str | None = None,
) -> list[Edge]:
    """The ``a.x = b.y`` conjuncts between two scans, as edges both ways (``only``: the
    joined table of an outer join, the one edge toward it)."""
    out: list[Edge] = []
    for node in conjuncts:
        if not isinstance(node, exp.EQ):
            continue
        ends = [_column_of(scope, c, names, columns) for c in (node.this, node.expression)]
        left, right = ends
        if left is None or right is None or left[0] == right[0]:
            continue
        ends_at = [(right, left, node.expression), (left, right, node.this)]
        out += [(a, b, node.sql(DIALECT)) for b, a, to in ends_at if _toward(to, only)]
    return out


def _toward(node: exp.Expr, only: str | None) -> bool:
    """Whether an edge may end at column ``node`` (an outer join's: at its joined table)."""
    return only is None or (isinstance(node, exp.Column) and node.table == only)


def _column_of(
    scope: Scope, node: exp.Expr, names: Mapping[str, int], columns: Sequence[Sequence[str]]
) -> Column | None:
    if not isinstance(node, exp.Column):
        return None
    index = _local(scope, node.table, names)
    real = _real(node.name, columns[index]) if index is not None else None
    return (index, real) if index is not None and real is not None else None


def _derive(scans: list[Scan], pushed: list[tuple[int, Predicate]], edges: list[Edge]) -> None:
    """Give each scan the predicates its join equalities carry over from the others."""
    for (source, column), (target, other), how in edges:
        for index, p in pushed:
            if index != source or p.column != column or p.op == "is null":
                continue
            sql = f"{p.sql} (through {how})"
            new = Predicate(other, p.op, p.values, sql, derived=True)
            if all(
                (q.column, q.op, q.values) != (other, p.op, p.values)
                for q in scans[target].predicates
            ):
                scans[target].predicates += (new,)


def _where(select: exp.Select) -> list[exp.Expr]:
    where = select.args.get("where")
    return _conjuncts(where.this) if where is not None else []


def _conjuncts(node: exp.Expr) -> list[exp.Expr]:
    node = node.unnest() if isinstance(node, exp.Paren) else node
    if isinstance(node, exp.And):
        return _conjuncts(node.left) + _conjuncts(node.right)
    return [node]


def _push_conjuncts(
    scope: Scope,
    conjuncts: list[exp.Expr],
    nullable: set[str],
    scans: list[Scan],
    names: Mapping[str, int],
    columns: Sequence[Sequence[str]],
    only: str | None = None,
) -> list[tuple[int, Predicate]]:
    """Add each single-table conjunct to its scan; the (scan, predicate) added."""
    added: list[tuple[int, Predicate]] = []
    for conjunct in conjuncts:
        found = _single_table(conjunct)
        if found is None or (only is not None and found != only):
            continue
        index = _local(scope, found, names)
        predicate = predicate_of(conjunct)
        if index is None or predicate is None:
            continue
        if found in nullable and predicate.op == "is null":
            continue
        real = _real(predicate.column, columns[index])
        if real is not None:
            new = Predicate(real, predicate.op, predicate.values, predicate.sql)
            scans[index].predicates += (new,)
            added.append((index, new))
    return added


def _single_table(node: exp.Expr) -> str | None:
    """The one table alias all columns of ``node`` refer to (None: none, several, or a
    subquery inside)."""
    if node.find(exp.Query) is not None:
        return None
    tables = {c.table for c in node.find_all(exp.Column)}
    return tables.pop() if len(tables) == 1 else None


def _nullable_aliases(select: exp.Select) -> set[str]:
    """The aliases of ``select``'s tables on the nullable side of an outer join."""
    seen = [select.args["from_"].this.alias_or_name] if select.args.get("from_") else []
    out: set[str] = set()
    for join in select.args.get("joins") or []:
        name = join.this.alias_or_name
        if join.side in ("LEFT", "FULL"):
            out.add(name)
        if join.side in ("RIGHT", "FULL"):
            out.update(seen)
        seen.append(name)
    return out


def _owner(scope: Scope | None, alias: str, names: Mapping[str, int]) -> int | None:
    """The scan ``alias`` names in ``scope`` or the scopes around it (correlation)."""
    while scope is not None:
        if alias in scope.sources:
            return _local(scope, alias, names)
        scope = scope.parent
    return None


def _local(scope: Scope, alias: str, names: Mapping[str, int]) -> int | None:
    source = scope.sources.get(alias)
    if isinstance(source, exp.Table):
        return names.get(source.name)
    return None


def _real(name: str, columns: Sequence[str]) -> str | None:
    """The table's own spelling of column ``name`` (DuckDB names ignore case)."""
    if name in columns:
        return name
    folded = [c for c in columns if c.casefold() == name.casefold()]
    return folded[0] if folded else None


def _limit(tree: exp.Query, scans: list[Scan], names: Mapping[str, int]) -> None:
    """Give the scan of a one-table query its LIMIT (+ OFFSET) and say whether its WHERE
    is nothing but pushable predicates."""
    if not isinstance(tree, exp.Select) or tree.args.get("joins") or len(scans) != 1:
        return
    blockers = ("group", "having", "order", "distinct", "qualify", "windows")
    if any(tree.args.get(k) for k in blockers) or tree.find(exp.AggFunc, exp.Window):
        return
    source = tree.args.get("from_")
    if source is None or names.get(source.this.name) != 0:
        return
    scan = scans[0]
    where = _where(tree)
    scan.complete = all(predicate_of(c) is not None for c in where)
    count, offset = _int_arg(tree, "limit"), _int_arg(tree, "offset")
    if count is not None and offset is not None:
        scan.limit = count + offset


def _int_arg(tree: exp.Select, key: str) -> int | None:
    node = tree.args.get(key)
    if node is None:
        return 0 if key == "offset" else None
    value = node.expression
    if isinstance(value, exp.Literal) and not value.is_string and value.this.isdigit():
        return int(value.this)
    return None
