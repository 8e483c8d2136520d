"""The Op/timestamp decoration of change records (endpoints/changerecords.py)."""

from __future__ import annotations

import pyarrow as pa

from opendms.endpoints.changerecords import with_op_and_time


def test_op_then_time_in_front_of_the_row_columns() -> None:
    ids = pa.array([1, 2])
    batch = with_op_and_time([ids], ["id"], ["I", "D"], ("ts", ["t1", "t2"]))
    assert batch.schema.names == ["Op", "ts", "id"]
    assert batch.to_pylist() == [
        {"Op": "I", "ts": "t1", "id": 1},
        {"Op": "D", "ts": "t2", "id": 2},
    ]


def test_either_column_can_be_left_out() -> None:
    ids = pa.array([1])
    assert with_op_and_time([ids], ["id"], None, ("ts", ["t"])).schema.names == ["ts", "id"]
    assert with_op_and_time([ids], ["id"], ["U"], None).schema.names == ["Op", "id"]
    assert with_op_and_time([ids], ["id"], None, None).schema.names == ["id"]
