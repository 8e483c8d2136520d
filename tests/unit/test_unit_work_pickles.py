"""A full-load unit crosses process boundaries as values: what ``copy_unit`` takes and
what it returns round-trip through pickle unchanged, and planning needs no state store."""

from __future__ import annotations

import pickle

from opendms.config import task_from_dict
from opendms.endpoints.base import EndpointURL
from opendms.engine.plan import Planner
from opendms.engine.rowscreen import DataErrorRow
from opendms.engine.unitcopy import Outcome, UnitOptions, UnitResult, UnitWork
from opendms.engine.units import LoadUnit
from opendms.model import Column, ColumnType, Kind, Segment, Table

SPEC = task_from_dict(
    {
        "name": "p",
        "source": "postgresql://u:secret@db.example/src?sslmode=disable",
        "target": {"url": "sqlite:///tmp/out.db", "settings": {}},
        "task_settings": {"ErrorBehavior": {"DataErrorEscalationCount": 7}},
    },
    where="test",
)
TABLE = Table(
    "public",
    "orders",
    (
        Column("id", ColumnType(Kind.INT64), nullable=False),
        Column("note", ColumnType(Kind.STRING)),
        Column("body", ColumnType(Kind.BINARY)),
    ),
    primary_key=("id",),
    estimated_rows=10,
)


def _work() -> UnitWork:
    planner = Planner(SPEC, EndpointURL.parse(SPEC.source.url))
    plan = planner.plan_one(TABLE)
    segment = Segment(2, ("id",), lower=("100",), upper=("200",))
    options = UnitOptions(
        SPEC.task_settings.ErrorBehavior, 500, write_threads=3, fresh=False, tags={"k": "v"}
    )
    return UnitWork(LoadUnit(plan, segment, parts=3), SPEC.source, SPEC.target, "0-1", options)


def test_unit_work_round_trips() -> None:
    work = _work()
    again = pickle.loads(pickle.dumps(work))
    assert again == work
    assert again.unit.plan.target.name == "orders" and again.unit.parts == 3
    assert again.options.behavior.DataErrorEscalationCount == 7


def test_unit_result_and_data_error_rows_round_trip() -> None:
    result = UnitResult(
        Outcome.RELOAD, rows=42, errors=1, seconds=0.5, reason="lost", stop_task=True
    )
    row = DataErrorRow("public.orders", "id=7", "note", "too long")
    assert pickle.loads(pickle.dumps(result)) == result
    assert pickle.loads(pickle.dumps([row])) == [row]


def test_planning_needs_no_store_and_no_target() -> None:
    plan = Planner(SPEC, EndpointURL.parse(SPEC.source.url)).plan_tables([TABLE])
    assert [p.target.qualified for p in plan] == ["public.orders"]
