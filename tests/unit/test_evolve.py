"""Column-change evolution, written once (opendms.evolve) and used by the CDC engine,
every applier and the lake: what a source/target table pair looks like after each
captured column change."""

from __future__ import annotations

import pytest

from opendms.changes import ApplyPlan, ColumnChange
from opendms.engine.ddl import evolve
from opendms.errors import TaskError
from opendms.model import Column, ColumnType, Kind, Table

INT, TEXT = ColumnType(Kind.INT32), ColumnType(Kind.STRING)


def _plan() -> ApplyPlan:
    source = Table(
        "s",
        "t",
        (Column("id", INT, False), Column("code", INT), Column("a", TEXT), Column("skip", TEXT)),
        primary_key=("id", "code"),
    )
    target = Table(
        "d",
        "t",
        (Column("id", INT, False), Column("code", INT), Column("a2", TEXT)),
        primary_key=("id", "code"),
    )
    return ApplyPlan(source, target, {"id": "id", "code": "code", "a": "a2"})


def _cols(table: Table) -> list[tuple[str, Kind, bool]]:
    return [(c.name, c.type.kind, c.nullable) for c in table.columns]


def test_drop_leaves_the_key_too() -> None:
    plan = _plan().after(ColumnChange("drop", "code"))
    assert plan.source.primary_key == ("id",) and plan.target.primary_key == ("id",)
    assert "code" not in plan.names and [c.name for c in plan.target.columns] == ["id", "a2"]


def test_a_retype_carries_the_new_nullability_on_both_sides() -> None:
    plan = _plan().after(ColumnChange("alter_type", "id", ColumnType(Kind.INT64), nullable=True))
    assert _cols(plan.source)[0] == ("id", Kind.INT64, True)
    assert _cols(plan.target)[0] == ("id", Kind.INT64, True)


def test_a_rename_follows_the_copied_column_and_leaves_others_alone() -> None:
    plan = _plan().after(ColumnChange("rename", "a", new_name="b"))
    assert plan.names["b"] == "b" and "a" not in plan.names
    assert [c.name for c in plan.target.columns] == ["id", "code", "b"]
    plan = plan.after(ColumnChange("rename", "skip", new_name="other"))  # not copied
    assert [c.name for c in plan.target.columns] == ["id", "code", "b"]
    assert "other" in [c.name for c in plan.source.columns] and "other" not in plan.names


def test_an_added_column_lands_under_its_name_once() -> None:
    add = ColumnChange("add", "n", INT)
    plan = _plan().after(add)
    assert plan.after(add) == plan
    assert plan.names["n"] == "n" and _cols(plan.target)[-1] == ("n", Kind.INT32, True)


def test_an_added_column_without_a_type_is_refused_by_appliers_and_skipped_by_evolve() -> None:
    add = ColumnChange("add", "n")
    with pytest.raises(TaskError, match="added column n has no type"):
        _plan().after(add)
    assert evolve(_plan(), (add, ColumnChange("alter_type", "a"))) == _plan()
