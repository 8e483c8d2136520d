"""SQL text shared by the database endpoints: filters, segment predicates and limits."""

from __future__ import annotations

from collections.abc import Callable

from opendms.model import Filter, FilterGroup, ReadPlan, Segment

Quote = Callable[[str], str]

_BINARY_OPS = {"eq": "=", "noteq": "<>", "gte": ">=", "lte": "<="}


def render_condition(cond: Filter, quote: Quote, literal: Quote) -> str:
    """One DMS filter condition as SQL."""
    col = quote(cond.column)
    if cond.op in _BINARY_OPS:
        return f"{col} {_BINARY_OPS[cond.op]} {literal(cond.values[0])}"
    if cond.op in ("between", "notbetween"):
        negation = "NOT " if cond.op == "notbetween" else ""
        low, high = (literal(v) for v in cond.values)
        return f"{col} {negation}BETWEEN {low} AND {high}"
    if cond.op == "null":
        return f"{col} IS NULL"
    if cond.op == "notnull":
        return f"{col} IS NOT NULL"
    raise ValueError(f"unknown filter operator {cond.op!r}")


def render_filters(groups: tuple[FilterGroup, ...], quote: Quote, literal: Quote) -> list[str]:
    """AND across groups, OR within one group."""
    out = []
    for group in groups:
        parts = [render_condition(c, quote, literal) for c in group.conditions]
        out.append("(" + " OR ".join(parts) + ")")
    return out


def render_segment(segment: Segment, quote: Quote, literal: Quote) -> list[str]:
    """Key-range predicates for one segment: lower < key <= upper (DMS boundaries).

    Rows with a NULL in any range column belong to the first segment only, so every
    row is read exactly once.
    """
    if not segment.columns:
        return []
    names = [quote(c) for c in segment.columns]
    cols = "(" + ", ".join(names) + ")"
    out = []
    if segment.lower is not None:
        out.append(f"{cols} > (" + ", ".join(literal(v) for v in segment.lower) + ")")
        out += [f"{name} IS NOT NULL" for name in names]
    if segment.upper is not None:
        upper = f"{cols} <= (" + ", ".join(literal(v) for v in segment.upper) + ")"
        if segment.lower is None:
            upper = "(" + " OR ".join([upper, *(f"{name} IS NULL" for name in names)]) + ")"
        out.append(upper)
    return out


def where_clause(plan: ReadPlan, quote: Quote, literal: Quote) -> str:
    """`` WHERE ...`` for a plan's filters and segment bounds ('' when there are none)."""
    where = render_filters(plan.filters, quote, literal)
    if plan.segment is not None:
        where += render_segment(plan.segment, quote, literal)
    where += [f"({w})" for w in plan.where]
    return " WHERE " + " AND ".join(where) if where else ""


def limit_clause(plan: ReadPlan) -> str:
    """`` LIMIT n`` for a plan with a row limit ('' without one)."""
    return f" LIMIT {int(plan.limit)}" if plan.limit is not None else ""
