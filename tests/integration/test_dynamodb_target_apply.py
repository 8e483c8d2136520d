"""The DynamoDB applier and writer on dynalite, change by change: order per item across
apply threads, updates that leave values out (UpdateItem), the apply error policies, a
condition-expression during CDC and during the full load, one key twice in a batch."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest

from opendms.changes import UNCHANGED, Op
from opendms.endpoints import open_applier, open_target
from opendms.endpoints.base import PrepMode
from opendms.endpoints.dynamodb.target import DynamoTarget
from opendms.endpoints.engine import ApplyOptions
from opendms.errors import EndpointError
from opendms.mapping import parse_table_mappings
from opendms.model import Column, ColumnType, Kind, Table
from tests.integration.test_apply_targets import delete, ins, plan, txn, upd
from tests.integration.test_dynamodb_target import _client, _prefix, _sorted, scan

pytestmark = pytest.mark.dynamodb

KV = Table(
    "src",
    "kv",
    (
        Column("k", ColumnType(Kind.STRING), False),
        Column("v", ColumnType(Kind.INT64)),
        Column("note", ColumnType(Kind.STRING)),
    ),
    primary_key=("k",),
)


@pytest.fixture
def url(dynalite_url: str) -> str:
    return f"{dynalite_url}&table_prefix=a{uuid.uuid4().hex[:8]}_"


@pytest.fixture
def target(url: str) -> Iterator[DynamoTarget]:
    found = open_target(url)
    assert isinstance(found, DynamoTarget)
    yield found
    found.close()


def _load(target: DynamoTarget, rows: list[dict[str, Any]]) -> int:
    target.prepare(KV, PrepMode.DROP_AND_CREATE)
    writer = target.writer(KV, None)
    writer.write(pa.RecordBatch.from_pylist(rows, schema=KV.arrow_schema()))
    return writer.close()


def _item(k: str, v: int | None = None, note: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"k": {"S": k}}
    if v is not None:
        out["v"] = {"N": str(v)}
    if note is not None:
        out["note"] = {"S": note}
    return out


Errors = list[tuple[str, Op, str, str]]


def _applier(
    target: DynamoTarget,
    errors: Errors,
    threads: int = 4,
    policies: dict[str, str] | None = None,
    buffer: int = 100,
) -> Any:
    def on_error(table: str, op: Op, key: str, reason: str) -> None:
        errors.append((table, op, key, reason))

    opts = ApplyOptions(
        policies=policies or None, on_error=on_error, threads=threads, buffer=buffer
    )
    return open_applier(target, "t", [plan(KV)], opts)


def test_one_key_twice_in_a_batch_the_last_row_wins(target: DynamoTarget, url: str) -> None:
    rows = [{"k": f"k{i % 30}", "v": i, "note": None} for i in range(100)]
    assert _load(target, rows) == 100
    last = [j + 90 if j + 90 < 100 else j + 60 for j in range(30)]
    assert scan(url, "kv") == _sorted([_item(f"k{j}", last[j]) for j in range(30)])


@pytest.mark.parametrize("buffer", [100, 7, 1])  # ParallelApplyBufferSize: waves of writes
def test_changes_of_one_item_stay_in_order_across_threads(
    target: DynamoTarget, url: str, buffer: int
) -> None:
    _load(target, [{"k": "a", "v": 0, "note": None}])
    errors: Errors = []
    applier = _applier(target, errors, threads=8, buffer=buffer)
    changes = [upd(KV, {"k": "a"}, {"k": "a", "v": i, "note": f"n{i}"}) for i in range(1, 60)]
    changes += [ins(KV, {"k": f"b{i}", "v": i, "note": None}) for i in range(40)]
    changes += [delete(KV, {"k": f"b{i}"}) for i in range(0, 40, 2)]
    assert applier.apply([txn(1, *changes)], "1", False) == len(changes)
    applier.close()
    want = [_item("a", 59, "n59")] + [_item(f"b{i}", i) for i in range(1, 40, 2)]
    assert scan(url, "kv") == _sorted(want)
    assert errors == []


def test_an_update_with_values_left_out_sets_and_removes(target: DynamoTarget, url: str) -> None:
    _load(target, [{"k": "a", "v": 1, "note": "kept"}, {"k": "b", "v": 2, "note": "gone"}])
    applier = _applier(target, [])
    changes = [
        upd(KV, {"k": "a"}, {"k": "a", "v": 10, "note": UNCHANGED}),
        upd(KV, {"k": "b"}, {"k": "b", "v": UNCHANGED, "note": None}),
    ]
    applier.apply([txn(1, *changes)], "1", False)
    applier.close()
    assert scan(url, "kv") == _sorted([_item("a", 10, "kept"), _item("b", 2)])


def test_a_key_change_moves_the_item(target: DynamoTarget, url: str) -> None:
    _load(target, [{"k": "a", "v": 1, "note": "x"}])
    applier = _applier(target, [])
    applier.apply([txn(1, upd(KV, {"k": "a"}, {"k": "z", "v": 2, "note": UNCHANGED}))], "1", False)
    applier.close()
    assert scan(url, "kv") == [_item("z", 2, "x")]


@pytest.mark.parametrize(
    ("policies", "items", "reported"),
    [
        ({}, [], ["update", "delete"]),  # update LOG_ERROR, delete IGNORE_RECORD: not reported
        ({"update": "INSERT_RECORD", "delete": "LOG_ERROR"}, [_item("m", 5)], ["delete"]),
        ({"update": "IGNORE_RECORD"}, [], []),
    ],
)
def test_apply_error_policies_for_missing_items(
    target: DynamoTarget, url: str, policies: dict[str, str], items: list[Any], reported: list[str]
) -> None:
    _load(target, [])
    errors: Errors = []
    applier = _applier(target, errors, policies=policies)
    changes = [upd(KV, {"k": "m"}, {"k": "m", "v": 5, "note": None}), delete(KV, {"k": "gone"})]
    applier.apply([txn(1, *changes)], "1", False)
    applier.close()
    assert scan(url, "kv") == items
    if policies.get("delete") != "LOG_ERROR" and "update" in reported:
        reported = ["update"]
    assert [e[1].name.lower() for e in errors] == reported
    assert all(e[0] == "src.kv" and "no item" in e[3] for e in errors)


CONDITIONAL = {
    "rules": [
        {
            "rule-type": "object-mapping",
            "rule-id": "1",
            "rule-name": "kv",
            "rule-action": "map-record-to-record",
            "object-locator": {"schema-name": "src", "table-name": "kv"},
            "mapping-parameters": {
                "partition-key-name": "k",
                "condition-expression": {
                    "expression": "attribute_not_exists(v) OR v < :max",
                    "expression-attribute-values": [{"name": ":max", "value": {"N": "100"}}],
                    "apply-during-cdc": True,
                },
            },
        }
    ]
}


def test_a_condition_expression_in_the_full_load_and_in_cdc(target: DynamoTarget, url: str) -> None:
    rule = parse_table_mappings(CONDITIONAL).object_mapping("src", "kv")
    target.set_object_mappings({("src", "kv"): rule})
    assert (
        _load(target, [{"k": "a", "v": 1, "note": None}, {"k": "b", "v": 500, "note": None}]) == 2
    )
    target.prepare(KV, PrepMode.DO_NOTHING)
    writer = target.writer(KV, None)
    rows = [{"k": "b", "v": 600, "note": "refused: 500 is not < 100"}]
    writer.write(pa.RecordBatch.from_pylist(rows, schema=KV.arrow_schema()))
    assert writer.close() == 0
    errors: Errors = []
    applier = _applier(target, errors)
    changes = [
        upd(KV, {"k": "a"}, {"k": "a", "v": 150, "note": None}),  # 1 < 100: applied
        upd(KV, {"k": "a"}, {"k": "a", "v": 2, "note": None}),  # 150: refused
        delete(KV, {"k": "b"}),  # 500: refused
    ]
    applier.apply([txn(1, *changes)], "1", False)
    applier.close()
    assert scan(url, "kv") == _sorted([_item("a", 150), _item("b", 500)])
    assert [(e[1], e[3]) for e in errors] == [
        (Op.UPDATE, "its condition-expression is false"),
        (Op.DELETE, "its condition-expression is false"),
    ]


def test_provisioned_tables_and_a_key_that_differs(url: str) -> None:
    settings = {"BillingMode": "PROVISIONED", "readcapacityunits": "7", "WriteCapacityUnits": 9}
    target = open_target(url, settings)
    assert isinstance(target, DynamoTarget)
    target.prepare(KV, PrepMode.DO_NOTHING)
    client = _client(url)
    found = client.describe_table(TableName=_prefix(url) + "kv")["Table"]
    throughput = found["ProvisionedThroughput"]
    assert (throughput["ReadCapacityUnits"], throughput["WriteCapacityUnits"]) == (7, 9)
    rekeyed = Table(KV.schema, KV.name, KV.columns, primary_key=("v",))
    with pytest.raises(EndpointError, match=r"exists with key \(k\); its mapping needs \(v\)"):
        target.prepare(rekeyed, PrepMode.TRUNCATE_BEFORE_LOAD)
