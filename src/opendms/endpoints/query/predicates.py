"""One conjunct of a query as a predicate a source may apply (I/O-free): a column
compared with literals, and which sources may take it (:func:`accepts`)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp

from opendms.model import Kind

__all__ = [
    "COMPATIBLE",
    "NULL_TESTS",
    "Literal",
    "Predicate",
    "accepts",
    "compatible",
    "predicate_of",
]

DIALECT = "duckdb"

_COMPARISONS: dict[type[exp.Expr], str] = {
    exp.EQ: "=",
    exp.NEQ: "<>",
    exp.LT: "<",
    exp.LTE: "<=",
    exp.GT: ">",
    exp.GTE: ">=",
}
_FLIPPED = {"=": "=", "<>": "<>", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_TEMPORAL = {exp.DataType.Type.DATE, exp.DataType.Type.TIMESTAMP, exp.DataType.Type.DATETIME}

# Which literal classes a column kind is compared with at the source (DuckDB casts a
# text literal to the column's date or timestamp type, as PostgreSQL and MySQL do).
COMPATIBLE: dict[str, frozenset[Kind]] = {
    "number": frozenset({Kind.INT16, Kind.INT32, Kind.INT64, Kind.FLOAT64, Kind.DECIMAL}),
    "text": frozenset({Kind.STRING, Kind.DATE, Kind.TIMESTAMP}),
    "temporal": frozenset({Kind.DATE, Kind.TIMESTAMP}),
    "bool": frozenset({Kind.BOOL}),
}
# Text is compared by collations that differ between engines (case, trailing spaces,
# locale order): only tests that any of them answer with at least DuckDB's rows.
_TEXT_OPS = frozenset({"=", "in", "like", "is null", "is not null"})
NULL_TESTS = frozenset({"is null", "is not null"})


@dataclass(frozen=True)
class Literal:
    """A literal operand: its class (``number``, ``text``, ``temporal`` for a cast of
    text to a date or timestamp, ``bool``) and the parsed node, written again in each
    source's dialect."""

    kind: str
    node: exp.Expr

    @property
    def text(self) -> str:
        """The value as text (a number's digits, a string's characters)."""
        inner = self.node.this if isinstance(self.node, exp.Cast) else self.node
        if isinstance(inner, exp.Neg):
            return "-" + str(inner.this.this)
        if isinstance(inner, exp.Boolean):
            return "true" if inner.this else "false"
        return str(inner.this)


@dataclass(frozen=True)
class Predicate:
    """``column op values`` about one table; ``sql``: as the query wrote it. A
    ``derived`` one is implied by another through a join's equality (``t.id = 5`` and
    ``i.ride = t.id`` give ``i.ride = 5``): not in the query, the source's only."""

    column: str
    op: str
    values: tuple[Literal, ...] = ()
    sql: str = ""
    derived: bool = False


def predicate_of(node: exp.Expr) -> Predicate | None:
    """``node`` as a column-versus-literals predicate, or None."""
    sql = node.sql(DIALECT)
    negated = isinstance(node, exp.Not)
    inner = node.this if negated else node
    found = _comparison(inner) if not negated else None
    found = found or _membership(inner, negated) or _null_test(inner, negated)
    found = found or (_like(inner) if not negated else None)
    if found is None:
        return None
    column, op, values = found
    return Predicate(column, op, values, sql)


Found = tuple[str, str, tuple[Literal, ...]] | None


def _comparison(node: exp.Expr) -> Found:
    op = _COMPARISONS.get(type(node))
    if op is None:
        return None
    left, right = node.this, node.expression
    if isinstance(right, exp.Column) and not isinstance(left, exp.Column):
        left, right, op = right, left, _FLIPPED[op]
    value = literal_of(right)
    if not isinstance(left, exp.Column) or value is None:
        return None
    return left.name, op, (value,)


def _membership(node: exp.Expr, negated: bool) -> Found:
    if isinstance(node, exp.Between) and not negated:
        bounds = (literal_of(node.args["low"]), literal_of(node.args["high"]))
        return _column_values(node.this, "between", bounds)
    if isinstance(node, exp.In) and not node.args.get("query") and not node.args.get("unnest"):
        values = tuple(literal_of(v) for v in node.expressions)
        return _column_values(node.this, "not in" if negated else "in", values)
    return None


def _column_values(column: exp.Expr, op: str, values: tuple[Literal | None, ...]) -> Found:
    if not isinstance(column, exp.Column) or not values or None in values:
        return None
    return column.name, op, tuple(v for v in values if v is not None)


def _null_test(node: exp.Expr, negated: bool) -> Found:
    is_null = isinstance(node, exp.Is) and isinstance(node.expression, exp.Null)
    if is_null and isinstance(node.this, exp.Column):
        return node.this.name, "is not null" if negated else "is null", ()
    return None


def _like(node: exp.Expr) -> Found:
    if not isinstance(node, exp.Like) or node.args.get("negate"):
        return None
    value = literal_of(node.expression)
    if not isinstance(node.this, exp.Column) or value is None or value.kind != "text":
        return None
    if "\\" in value.text:  # PostgreSQL and MySQL escape with it, DuckDB does not
        return None
    return node.this.name, "like", (value,)


def literal_of(node: exp.Expr | None) -> Literal | None:
    """A literal operand (a number, possibly negative; text; a boolean; text cast to a
    date or timestamp), or None."""
    if isinstance(node, exp.Literal):
        return Literal("text" if node.is_string else "number", node)
    if isinstance(node, exp.Neg) and isinstance(node.this, exp.Literal):
        return Literal("number", node) if not node.this.is_string else None
    if isinstance(node, exp.Boolean):
        return Literal("bool", node)
    if isinstance(node, exp.Cast) and isinstance(node.this, exp.Literal) and node.this.is_string:
        return Literal("temporal", node) if node.to.this in _TEMPORAL else None
    return None


# -- what a source takes ----------------------------------------------------------------


def compatible(predicate: Predicate, kind: Kind) -> bool:
    """Whether ``predicate``'s literals are of a class a ``kind`` column is compared
    with, and its operator one that text comparisons agree on everywhere."""
    if kind is Kind.STRING and predicate.op not in _TEXT_OPS:
        return False
    if predicate.op == "like" and kind is not Kind.STRING:
        return False
    return all(kind in COMPATIBLE.get(v.kind, frozenset()) for v in predicate.values)


def accepts(
    predicate: Predicate, kind: Kind, kinds: frozenset[Kind], null_kinds: frozenset[Kind]
) -> bool:
    """Whether a source whose engine compares ``kinds`` (and tests NULL on
    ``null_kinds``) as DuckDB does may apply ``predicate`` to a ``kind`` column."""
    if predicate.op in NULL_TESTS:
        return kind in null_kinds
    return kind in kinds and compatible(predicate, kind)


def to_sql(predicate: Predicate, dialect: object) -> str:
    """``predicate`` written in a source's SQL (``dialect``: a sqlglot dialect)."""
    column = exp.column(predicate.column, quoted=True)
    values = [v.node.copy() for v in predicate.values]
    node: exp.Expr
    if predicate.op in _NODES:
        node = _NODES[predicate.op](this=column, expression=values[0])
    elif predicate.op in ("in", "not in"):
        node = exp.In(this=column, expressions=values)
    elif predicate.op == "between":
        node = exp.Between(this=column, low=values[0], high=values[1])
    else:
        node = exp.Is(this=column, expression=exp.Null())
    if predicate.op in ("not in", "is not null"):
        node = exp.Not(this=node)
    return node.sql(dialect=dialect)  # type: ignore[arg-type]


_NODES: dict[str, type[exp.Expression]] = {
    **{op: node for node, op in _COMPARISONS.items()},  # type: ignore[misc]
    "like": exp.Like,
}
