"""SQL-level translation with sqlglot: views, check constraints and column defaults,
from one :class:`~opendms.endpoints.ddldialect.DdlDialect` to another."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import sqlglot
from sqlglot import ErrorLevel, exp
from sqlglot.errors import SqlglotError

from opendms.endpoints.ddldialect import DdlDialect
from opendms.model import ColumnType, Kind

# Functions whose translation is an approximation worth a look.
_APPROXIMATE: dict[type, str] = {
    exp.TimeToStr: "date formatting",
    exp.StrToTime: "date parsing",
    exp.DateAdd: "date arithmetic",
    exp.DateSub: "date arithmetic",
    exp.DateDiff: "date arithmetic",
    exp.RegexpLike: "regular expressions",
    exp.ArrayAgg: "array aggregation",
}

# Functions whose value changes from call to call (MySQL refuses them in CHECK).
_VOLATILE = (exp.CurrentTimestamp, exp.CurrentDate, exp.CurrentTime, exp.Rand, exp.Uuid)

# Nodes that sqlglot writes for every dialect but only targets with arrays can run.
_ARRAYS_ONLY: dict[type, str] = {
    exp.Explode: "unnest()",
    exp.Unnest: "unnest()",
    exp.Array: "an ARRAY value",
}

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
    unknown: list[str] = field(default_factory=list)  # functions copied unchanged
    volatile: bool = False  # calls the clock, a random or a UUID generator
    regexp: bool = False  # matches a regular expression
    functions: set[str] = field(default_factory=set)  # every function name it calls


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


def _arrays_only(tree: exp.Expression) -> str:
    for node in tree.walk():
        what = _ARRAYS_ONLY.get(type(node))
        if what:
            return what
    return ""


def _warnings(tree: exp.Expression, target: DdlDialect) -> list[str]:
    out: list[str] = []
    for node in tree.walk():
        what = _APPROXIMATE.get(type(node))
        if what:
            out.append(f"{what} ({node.sql()[:60]}) was translated; verify the results")
        elif isinstance(node, exp.GroupConcat):
            out.append(target.string_agg_note.format(sql=node.sql()[:60]))
        elif isinstance(node, exp.Anonymous):
            out.append(f"function {node.name}() has no known translation; copied unchanged")
    return sorted(set(out))


def _function_names(tree: exp.Expression) -> set[str]:
    """Lower-case names of the functions ``tree`` calls, as written or as sqlglot knows them."""
    out: set[str] = set()
    for node in tree.find_all(exp.Func):
        if isinstance(node, exp.Anonymous):
            out.add(node.name.lower())
        else:
            out.update(n.lower() for n in type(node).sql_names())
    return out


def translate(
    sql: str,
    source: DdlDialect,
    target: DdlDialect,
    rename: Callable[[exp.Table], None] | None = None,
) -> Translation:
    """``sql`` (an expression or a SELECT) from engine ``source`` to ``target``."""
    try:
        tree = sqlglot.parse_one(source.prepare(sql), read=source.sqlglot)
        tree = tree.transform(_drop_literal_casts)
        if rename is not None:
            for table in tree.find_all(exp.Table):
                rename(table)
        out = tree.sql(dialect=target.sqlglot, unsupported_level=ErrorLevel.RAISE, identify=True)
        unsupported = _arrays_only(tree) if not target.arrays else ""
        if unsupported:
            return Translation(error=f"{unsupported} has no {target.name} equivalent")
    except SqlglotError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return Translation(error=first[:300])
    return Translation(
        out,
        warnings=_warnings(tree, target) if source is not target else [],
        unknown=sorted({n.name for n in tree.find_all(exp.Anonymous)}),
        volatile=any(True for _ in tree.find_all(*_VOLATILE)),
        regexp=any(True for _ in tree.find_all(exp.RegexpLike)),
        functions=_function_names(tree),
    )


_LITERAL = re.compile(
    r"^\(?\s*('(?:[^']|'')*'|-?\d+(?:\.\d+)?(?:e[-+]?\d+)?|true|false)\s*\)?"
    r"(?:::[\w .\"\[\]()]+)*$",
    re.I,
)
_NOW = re.compile(
    r"^(now\(\)|current_timestamp(\(\d*\))?|localtimestamp(\(\d*\))?|"
    r"transaction_timestamp\(\)|statement_timestamp\(\)|datetime\('now'\))$",
    re.I,
)
_TODAY = re.compile(r"^(current_date|curdate\(\)|date\('now'\))$", re.I)
_CLOCK_KINDS = (Kind.DATE, Kind.TIME, Kind.TIMESTAMP, Kind.TIMESTAMPTZ)
# PostgreSQL date/time input words: ('now'::text)::date is evaluated at each insert
_SPECIAL = {"now": "now", "today": "today", "current": "now"}
_OTHER_SPECIAL = ("tomorrow", "yesterday", "infinity", "-infinity", "epoch", "allballs")


@dataclass(frozen=True)
class Default:
    """A translated default: SQL (None = no default) and a warning if dropped."""

    sql: str | None
    warning: str = ""


def translate_default(expression: str | None, target: DdlDialect, ctype: ColumnType) -> Default:
    """A column default of type ``ctype`` for ``target``."""
    if expression is None:
        return Default(None)
    text = _unwrap(expression.strip())
    if text.upper() == "NULL" or text.upper().startswith("NULL::"):
        return Default(None)
    literal = _LITERAL.match(text)
    if literal and ctype.kind in _CLOCK_KINDS and literal.group(1).startswith("'"):
        return _date_word(expression, literal.group(1), target, ctype)
    if literal:
        return Default(_literal(literal.group(1), target, ctype.kind is Kind.BOOL))
    if _NOW.match(text):
        return _clock("now", text, target, ctype)
    if _TODAY.match(text):
        return _clock("today", text, target, ctype)
    return _dropped(text, "only literals and the current date and time are translated")


def _unwrap(text: str) -> str:
    """``(curdate())`` -> ``curdate()`` (MySQL shows expression defaults in parentheses)."""
    while text.startswith("(") and text.endswith(")") and _balanced(text[1:-1]):
        text = text[1:-1].strip()
    return text


def _balanced(text: str) -> bool:
    depth = 0
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            return False
    return depth == 0


def _date_word(source: str, literal: str, target: DdlDialect, ctype: ColumnType) -> Default:
    """A date/time literal: a date, or one of PostgreSQL's special input words."""
    word = literal[1:-1].strip().lower()
    if word in _SPECIAL:
        return _clock(_SPECIAL[word], source, target, ctype)
    if word in _OTHER_SPECIAL:
        if target.special_dates:
            return Default(source.strip())
        return _dropped(source, f"{target.name} has no '{word}' date value")
    return Default(_literal(literal, target, False))


def _clock(what: str, text: str, target: DdlDialect, ctype: ColumnType) -> Default:
    """The target's current date or time for a column of type ``ctype``."""
    kind = ctype.kind
    if kind not in _CLOCK_KINDS:
        return _dropped(text, f"the column type {kind.value} has no clock default")
    if kind is Kind.DATE or what == "today":
        return Default(target.current_date)
    if kind is Kind.TIME:
        return Default(target.current_time)
    if target.timestamp_precision:
        return Default(f"CURRENT_TIMESTAMP({clock_precision(ctype)})")
    return Default("CURRENT_TIMESTAMP")


def clock_precision(ctype: ColumnType) -> int:
    """The fractional digits of CURRENT_TIMESTAMP(p) for a column of type ``ctype``."""
    return 6 if ctype.precision is None else min(ctype.precision, 6)


def _literal(value: str, target: DdlDialect, boolean: bool) -> str:
    low = value.lower()
    if low in ("true", "false"):
        if not target.boolean_literals:
            return "1" if low == "true" else "0"
        return low.upper()
    if boolean and low in ("0", "1"):
        return "TRUE" if low == "1" else "FALSE"
    if target.backslash_escapes and value.startswith("'"):
        return value.replace("\\", "\\\\")
    return value


def _dropped(text: str, why: str) -> Default:
    return Default(None, f"default {text} dropped ({why}); set it on the target by hand")
