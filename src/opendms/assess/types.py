"""The ``type-conversions`` check: columns whose values change form on the target engine
(a round trip back would not give the source's type or values)."""

from __future__ import annotations

from collections.abc import Callable

from opendms.assess.model import Check, passed, problem
from opendms.endpoints import engine_for, same_engine
from opendms.endpoints.base import EndpointURL
from opendms.mapping import TablePlan
from opendms.model import ColumnType, Kind


def type_check(
    plans: list[TablePlan], source: EndpointURL, target: EndpointURL, converted: bool
) -> Check:
    """``converted``: the task creates its tables with ``convert_schema`` (domains keep
    their base type and checks there)."""
    engine = engine_for(target)
    same = same_engine(source.scheme, target.scheme)
    domains = {} if same else _domains(source, plans)
    issues = []
    for plan in plans:
        for out in plan.outputs:
            if out.source is None:
                continue
            ctype = plan.source.column(out.source).type
            kept = same or (converted and ctype.type_name in domains)
            reason = None if kept else lossy(ctype, engine.lossy, domains)
            if reason:
                issues.append(f"{plan.source.qualified}.{out.source}: {reason}")
    if not issues:
        return passed("type-conversions", f"every column converts to {engine.title} without loss")
    return problem(
        "type-conversions",
        False,
        f"{len(issues)} column(s) change form or may lose values on {engine.title}",
        "check the listed columns; change the target type with a change-data-type rule, or "
        "accept the conversion (values that do not fit become data errors)",
        tuple(issues),
    )


def _domains(source: EndpointURL, plans: list[TablePlan]) -> dict[str, str]:
    """PostgreSQL source: domain name -> base type, for the columns of other types."""
    named = any(c.type.type_name for p in plans for c in p.source.columns)
    return engine_for(source).domains(source) if named else {}


def lossy(
    ctype: ColumnType,
    engine_lossy: Callable[[ColumnType], str | None],
    domains: dict[str, str] | None = None,
) -> str | None:
    """Why values of ``ctype`` change form or may not fit on a target whose engine says
    ``engine_lossy`` (None: exact); ``domains`` maps the source's domain names to their
    base types."""
    if ctype.type_name and ctype.kind is Kind.STRING:
        return _named(ctype.type_name, domains or {})
    return engine_lossy(ctype)


def _named(name: str, domains: dict[str, str]) -> str:
    """A type without a canonical kind (domain, tsvector, inet, ...): carried as text."""
    if name in domains:
        return (
            f"domain {name} becomes text: its base type ({domains[name]}) and checks are not "
            "kept (convert_schema: true creates the base type with the checks)"
        )
    if name == "tsvector":
        return "tsvector becomes text: the lexemes are kept as text, full-text search is not"
    return f"type {name} becomes text"
