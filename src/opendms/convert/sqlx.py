"""SQL-level translation with sqlglot: views, check constraints and column defaults."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import sqlglot
from sqlglot import ErrorLevel, exp
from sqlglot.errors import SqlglotError

DIALECTS = {"postgresql": "postgres", "mysql": "mysql", "sqlite": "sqlite"}

# Functions whose translation is an approximation worth a look.
_APPROXIMATE: dict[type, str] = {
    exp.TimeToStr: "date formatting",
    exp.StrToTime: "date parsing",
    exp.DateAdd: "date arithmetic",
    exp.DateSub: "date arithmetic",
    exp.DateDiff: "date arithmetic",
    exp.RegexpLike: "regular expressions",
    exp.GroupConcat: "string aggregation",
    exp.ArrayAgg: "array aggregation",
}

# Nodes that sqlglot writes for every dialect but only PostgreSQL can run.
_PG_ONLY: dict[type, str] = {
    exp.Explode: "unnest()",
    exp.Unnest: "unnest()",
    exp.Array: "an ARRAY value",
}

_PG_TEXT_CAST = re.compile(
    r"('(?:[^']|'')*')::(?:text|character varying|varchar|bpchar|character)(?:\(\d+\))?"
)

_TEXT_TYPES = {exp.DataType.Type.TEXT, exp.DataType.Type.VARCHAR, exp.DataType.Type.CHAR}
_NUMBER_TYPES = {
    exp.DataType.Type.DECIMAL,
    exp.DataType.Type.INT,
    exp.DataType.Type.BIGINT,
    exp.DataType.Type.SMALLINT,
    exp.DataType.Type.DOUBLE,
    exp.DataType.Type.FLOAT,
}


@dataclass
class Translation:
    """The translated SQL, or why it failed, plus approximation warnings."""

    sql: str = ""
    error: str = ""
    warnings: list[str] = field(default_factory=list)


def _drop_literal_casts(node: exp.Expression) -> exp.Expression:
    """``'x'::text`` -> ``'x'``, ``(0)::numeric`` -> ``0``: catalog output casts literals."""
    if not isinstance(node, exp.Cast):
        return node
    inner = node.this.unnest() if isinstance(node.this, exp.Paren) else node.this
    if not isinstance(inner, exp.Literal):
        return node
    literal: exp.Literal = inner
    if literal.is_string and node.to.this in _TEXT_TYPES:
        return literal
    if literal.is_number and node.to.this in _NUMBER_TYPES:
        return literal
    return node


def _pg_only(tree: exp.Expression) -> str:
    for node in tree.walk():
        what = _PG_ONLY.get(type(node))
        if what:
            return what
    return ""


def _warnings(tree: exp.Expression) -> list[str]:
    out: list[str] = []
    for node in tree.walk():
        what = _APPROXIMATE.get(type(node))
        if what:
            out.append(f"{what} ({node.sql()[:60]}) was translated; verify the results")
        elif isinstance(node, exp.Anonymous):
            out.append(f"function {node.name}() has no known translation; copied unchanged")
    return sorted(set(out))


def translate(
    sql: str,
    source: str,
    target: str,
    rename: Callable[[exp.Table], None] | None = None,
) -> Translation:
    """``sql`` (an expression or a SELECT) from engine ``source`` to ``target``."""
    try:
        if source == "postgresql":
            sql = _PG_TEXT_CAST.sub(r"\1", sql)
        tree = sqlglot.parse_one(sql, read=DIALECTS[source])
        tree = tree.transform(_drop_literal_casts)
        if rename is not None:
            for table in tree.find_all(exp.Table):
                rename(table)
        out = tree.sql(dialect=DIALECTS[target], unsupported_level=ErrorLevel.RAISE, identify=True)
        unsupported = _pg_only(tree) if target != "postgresql" else ""
        if unsupported:
            return Translation(error=f"{unsupported} has no {target} equivalent")
    except SqlglotError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return Translation(error=first[:300])
    return Translation(out, warnings=_warnings(tree))


_LITERAL = re.compile(
    r"^\(?\s*('(?:[^']|'')*'|-?\d+(?:\.\d+)?(?:e[-+]?\d+)?|true|false)\s*\)?"
    r"(?:::[\w .\"\[\]()]+)*$",
    re.I,
)
_NOW = re.compile(
    r"^(now\(\)|current_timestamp(\(\d*\))?|localtimestamp(\(\d*\))?|"
    r"transaction_timestamp\(\)|statement_timestamp\(\))$",
    re.I,
)
_TODAY = re.compile(r"^(current_date|curdate\(\))$", re.I)


@dataclass(frozen=True)
class Default:
    """A translated default: SQL (None = no default) and a warning if dropped."""

    sql: str | None
    warning: str = ""


def translate_default(
    expression: str | None, target: str, now: str, boolean: bool = False
) -> Default:
    """A column default for ``target``; ``now`` is the target's current-timestamp SQL."""
    if expression is None:
        return Default(None)
    text = expression.strip()
    if text.upper() == "NULL" or text.upper().startswith("NULL::"):
        return Default(None)
    literal = _LITERAL.match(text)
    if literal:
        return Default(_literal(literal.group(1), target, boolean))
    if _NOW.match(text):
        return Default(now) if now else _dropped(text, "the column type has no timestamp default")
    if _TODAY.match(text):
        if target == "mysql":
            return _dropped(text, "MySQL has no CURRENT_DATE column default")
        return Default("CURRENT_DATE")
    return _dropped(text, "only literals and the current timestamp are translated")


def _literal(value: str, target: str, boolean: bool) -> str:
    low = value.lower()
    if low in ("true", "false"):
        if target == "sqlite":
            return "1" if low == "true" else "0"
        return low.upper()
    if boolean and low in ("0", "1"):
        return "TRUE" if low == "1" else "FALSE"
    if target == "mysql" and value.startswith("'"):
        return value.replace("\\", "\\\\")
    return value


def _dropped(text: str, why: str) -> Default:
    return Default(None, f"default {text} dropped ({why}); set it on the target by hand")
