"""One captured change as DynamoDB item calls (:class:`Write`), and the pieces of the
calls: a change's values by target column, condition and update expressions."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from opendms.changes import UNCHANGED, ApplyPlan, Op
from opendms.endpoints.dynamodb.items import Item, ItemShape
from opendms.mapping.objectmap import Condition
from opendms.model import arrow_type

__all__ = [
    "Row",
    "Write",
    "condition_args",
    "in_order",
    "item_exists",
    "merged",
    "path_expr",
    "row_label",
    "target_row",
]

Row = dict[str, Any]


@dataclass
class Write:
    """One change as item calls: ``run`` does them (on a worker thread)."""

    table: str  # the source table's label (messages)
    op: Op
    label: str  # the row's key as text
    run: Callable[[Write], None]
    name: str = ""
    key: Item = field(default_factory=dict)
    old_key: Item | None = None
    item: Item | None = None
    sets: dict[tuple[str, ...], Any] = field(default_factory=dict)
    removes: list[tuple[str, ...]] = field(default_factory=list)
    condition: Condition | None = None
    shape: ItemShape | None = None
    seq: int = 0  # the change's place in its batch (errors are reported in that order)
    before: Row | None = None  # an old row without the key's columns: found by
    partition: Item | None = None  # its partition key and the values it has


def row_label(values: dict[str, Any]) -> str:
    """A row's key as messages show it."""
    return json.dumps(values, default=str, ensure_ascii=False)


def in_order(writes: list[Write]) -> None:
    for write in writes:
        write.run(write)


def target_row(plan: ApplyPlan, values: dict[str, Any]) -> Row:
    """A change's values by target column, cast to the target types where they differ."""
    out: Row = {}
    columns = {c.name for c in plan.target.columns}
    for name, value in values.items():
        target = plan.names.get(name, name)
        if target not in columns:
            continue
        out[target] = (
            value if value is UNCHANGED or value is None else _cast(plan, name, target, value)
        )
    return out


def _cast(plan: ApplyPlan, source: str, target: str, value: Any) -> Any:
    try:
        src, dst = plan.source_type(source), plan.target_type(target)
    except KeyError:
        return value
    if arrow_type(src) == arrow_type(dst):
        return value
    return pa.array([value], arrow_type(src)).cast(arrow_type(dst))[0].as_py()


def item_exists(key: Item) -> Condition:
    """The condition that the item with ``key`` exists."""
    name = next(iter(key))
    return Condition("attribute_exists(#opendms_key)", {}, {"#opendms_key": name})


def condition_args(user: Condition | None, extra: Condition | None = None) -> dict[str, Any]:
    """The condition arguments of a call: the user's and ``extra``, ANDed."""
    found = [c for c in (user, extra) if c is not None]
    if not found:
        return {}
    expr = " AND ".join(f"({c.expression})" for c in found)
    names = {k: v for c in found for k, v in c.names.items()}
    values = {k: v for c in found for k, v in c.values.items()}
    return Condition(expr, values, names).call_args()


def path_expr(path: tuple[str, ...], names: dict[str, str]) -> str:
    """An attribute path in an expression, each name as a ``#n`` placeholder."""
    out = []
    for part in path:
        ref = f"#n{len(names)}"
        names[ref] = part
        out.append(ref)
    return ".".join(out)


def merged(item: Item, write: Write) -> Item:
    """The old item with an update's ``sets`` and ``removes`` applied."""
    out = {k: (dict(v) if "M" not in v else {"M": dict(v["M"])}) for k, v in item.items()}
    for path, av in write.sets.items():
        if len(path) == 1:
            out[path[0]] = av
        else:
            out.setdefault(path[0], {"M": {}})["M"][path[1]] = av
    for path in write.removes:
        if len(path) == 1:
            out.pop(path[0], None)
        else:
            out.get(path[0], {"M": {}})["M"].pop(path[1], None)
    return out
