"""Choice rules: which rule of a Choice state matches its input.

A rule compares the value at ``Variable`` with a literal, or with the value at a path
(the operators ending in ``Path``), or tests its kind (``IsNull``, ``IsPresent``,
``IsNumeric``, ``IsString``, ``IsBoolean``, ``IsTimestamp``); ``And``, ``Or`` and
``Not`` combine rules. A comparison whose variable is missing or of another type than
the operator compares is false (only ``IsPresent`` looks at a missing variable; a
missing path of a ``…Path`` operand is false too).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from opendms.workflows.paths import PathError, read_path

__all__ = ["choose", "matches"]

_MISSING = object()
_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "Equals": lambda a, b: a == b,
    "LessThan": lambda a, b: a < b,
    "GreaterThan": lambda a, b: a > b,
    "LessThanEquals": lambda a, b: a <= b,
    "GreaterThanEquals": lambda a, b: a >= b,
}


def choose(rules: list[dict[str, Any]], data: Any, context: Any = None) -> str | None:
    """The ``Next`` of the first rule that matches ``data``; None: none does."""
    for rule in rules:
        if matches(rule, data, context):
            return str(rule["Next"])
    return None


def matches(rule: dict[str, Any], data: Any, context: Any = None) -> bool:
    """Whether ``rule`` holds for ``data``."""
    if "And" in rule:
        return all(matches(r, data, context) for r in rule["And"])
    if "Or" in rule:
        return any(matches(r, data, context) for r in rule["Or"])
    if "Not" in rule:
        return not matches(rule["Not"], data, context)
    value = _read(rule["Variable"], data, context)
    op = next(k for k in rule if k not in ("Variable", "Next", "Comment"))
    operand = rule[op]
    if op.startswith("Is"):
        return bool(_kind_test(op, value) == operand)
    if op.endswith("Path"):
        op, operand = op[: -len("Path")], _read(operand, data, context)
        if operand is _MISSING:
            return False
    return _compare(op, value, operand)


def _read(path: str, data: Any, context: Any) -> Any:
    try:
        return read_path(path, data, context)
    except PathError:
        return _MISSING


def _kind_test(op: str, value: Any) -> bool:
    if op == "IsPresent":
        return value is not _MISSING
    if value is _MISSING:
        return False
    number = isinstance(value, int | float) and not isinstance(value, bool)
    tests = {
        "IsNull": value is None,
        "IsNumeric": number,
        "IsString": isinstance(value, str),
        "IsBoolean": isinstance(value, bool),
        "IsTimestamp": isinstance(value, str) and _timestamp(value) is not None,
    }
    return tests[op]


def _compare(op: str, value: Any, operand: Any) -> bool:
    if value is _MISSING:
        return False
    if op == "BooleanEquals":
        return isinstance(value, bool) and value == operand
    if op == "StringMatches":
        return isinstance(value, str) and _glob(operand).fullmatch(value) is not None
    for name in ("LessThanEquals", "GreaterThanEquals", "LessThan", "GreaterThan", "Equals"):
        if op.endswith(name):
            return _ordered(op[: -len(name)], name, value, operand)
    return False


def _ordered(kind: str, relation: str, value: Any, operand: Any) -> bool:
    if kind == "String":
        ok = isinstance(value, str) and isinstance(operand, str)
    elif kind == "Numeric":
        ok = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (value, operand))
    else:
        value, operand = _timestamp(value), _timestamp(operand)
        ok = value is not None and operand is not None
    return ok and _ORDER[relation](value, operand)


def _timestamp(value: Any) -> datetime | None:
    """An RFC 3339 timestamp with a zone (``2024-05-01T12:00:00Z``), else None."""
    if not isinstance(value, str) or "T" not in value:
        return None
    try:
        stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return stamp if stamp.tzinfo is not None else None


def _glob(pattern: str) -> re.Pattern[str]:
    """``StringMatches``: ``*`` matches any text, ``\\*`` a star, ``\\\\`` a backslash."""
    out, at = [], 0
    while at < len(pattern):
        char = pattern[at]
        if char == "\\" and at + 1 < len(pattern):
            out.append(re.escape(pattern[at + 1]))
            at += 2
            continue
        out.append(".*" if char == "*" else re.escape(char))
        at += 1
    return re.compile("".join(out), re.DOTALL)
