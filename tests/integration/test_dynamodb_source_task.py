"""A ``full-load-and-cdc`` task DynamoDB (moto, stream enabled) -> PostgreSQL, judged by
reading both sides independently: the DynamoDB items through boto3 (decoded here, not by
opendms) and the PostgreSQL rows through psycopg, compared row by row. An attribute that
first appears during CDC becomes a new column of the target table."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from opendms.config import task_from_dict
from opendms.endpoints.dynamodb import scan
from opendms.endpoints.dynamodb import source as source_module
from opendms.service.run import run_task
from opendms.state import StateStore

Row = dict[str, Any]


def _item(i: int) -> dict[str, Any]:
    return {
        "id": {"N": str(i)},
        "name": {"S": f"item {i} ✓"},
        "price": {"N": f"{i}.{i:02d}"},
        "ok": {"BOOL": i % 2 == 0},
        "raw": {"B": bytes([i, 0, 255])},
        "doc": {"M": {"n": {"N": str(i)}, "tags": {"L": [{"S": "a"}, {"S": str(i)}]}}},
    }


def _plain(value: dict[str, Any]) -> Any:
    """The test's own reading of an AttributeValue (what PostgreSQL should hold)."""
    tag, inner = next(iter(value.items()))
    if tag == "N":
        return Decimal(inner)
    if tag == "M":
        return {k: _plain(v) for k, v in inner.items()}
    if tag == "L":
        return [_plain(v) for v in inner]
    return inner  # S, B (bytes), BOOL


def _dynamo_rows(client: Any, table: str) -> dict[Decimal, Row]:
    items = client.scan(TableName=table, ConsistentRead=True)["Items"]
    return {Decimal(i["id"]["N"]): {k: _plain(v) for k, v in i.items()} for i in items}


def _pg_rows(url: str, table: str) -> dict[Decimal, Row]:
    with psycopg.connect(url) as conn:
        cur = conn.execute(f'SELECT * FROM dynamodb."{table}"')
        names = [d.name for d in cur.description or []]
        # an attribute an item lacks is NULL in its row
        rows = [{n: v for n, v in zip(names, r, strict=True) if v is not None} for r in cur]
    out = {}
    for row in rows:
        row["raw"] = bytes(row["raw"])
        doc = row["doc"] if isinstance(row["doc"], str) else json.dumps(row["doc"])
        row["doc"] = json.loads(doc, parse_float=Decimal, parse_int=Decimal)
        out[row["id"]] = row
    return out


def _task(name: str, source: str, target: str, table: str) -> Any:
    rule = {
        "rule-type": "selection",
        "rule-id": "1",
        "rule-name": "one",
        "object-locator": {"schema-name": "dynamodb", "table-name": table},
        "rule-action": "include",
    }
    return task_from_dict(
        {
            "name": name,
            "source": source,
            "target": target,
            "migration_type": "full-load-and-cdc",
            "table_mappings": {"rules": [rule]},
        },
        where="test",
    )


def test_full_load_then_changes_reach_postgresql(
    moto_server: Any, moto_url: str, pg_target_db: str, tmp_path: Path
) -> None:
    client = moto_server.client()
    table = f"orders_{uuid.uuid4().hex[:8]}"
    client.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "N"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    for i in range(1, 21):
        client.put_item(TableName=table, Item=_item(i))
    client.update_item(  # a change before the load: replayed idempotently
        TableName=table,
        Key={"id": {"N": "1"}},
        UpdateExpression="SET #n = :n",
        ExpressionAttributeNames={"#n": "name"},
        ExpressionAttributeValues={":n": {"S": "renamed"}},
    )
    store = StateStore(tmp_path / "state.db")
    spec = _task("dyn", moto_url, pg_target_db, table)
    run_task(spec, store)
    assert _pg_rows(pg_target_db, table) == _dynamo_rows(client, table)

    client.put_item(TableName=table, Item={**_item(100), "extra": {"S": "new"}})
    client.update_item(
        TableName=table,
        Key={"id": {"N": "2"}},
        UpdateExpression="SET price = :p, ok = :o",
        ExpressionAttributeValues={
            ":p": {"N": "12345678901234567890.123456789"},
            ":o": {"BOOL": True},
        },
    )
    client.delete_item(TableName=table, Key={"id": {"N": "3"}})
    client.put_item(TableName=table, Item={**_item(4), "name": {"S": "replaced"}})
    run_task(spec, store)
    want = _dynamo_rows(client, table)
    got = _pg_rows(pg_target_db, table)
    assert sorted(got) == sorted(want) and 3 not in got and 100 in got
    for key, row in want.items():
        assert got[key] == row, key
    assert got[Decimal(2)]["price"] == Decimal("12345678901234567890.123456789")
    assert got[Decimal(100)]["extra"] == "new"  # a new attribute became a column


def test_writes_during_the_scan_are_replayed_from_the_stream(
    moto_server: Any,
    moto_url: str,
    pg_target_db: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Items changed while the ``Scan`` runs (after its first page: some before the
    scan's cursor, some after) end up in PostgreSQL as DynamoDB holds them."""
    client = moto_server.client()
    table = f"busy_{uuid.uuid4().hex[:8]}"
    client.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "N"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
    )
    for i in range(1, 31):
        client.put_item(TableName=table, Item=_item(i))
    real = scan.scan_pages

    def writing_after_the_first_page(spec: Any) -> Iterator[Any]:
        for n, page in enumerate(real(spec)):
            yield page
            if n == 0 and spec.table == table:
                seen = [Decimal(i["id"]["N"]) for i in page]
                _write_during_scan(client, table, int(seen[0]))

    monkeypatch.setattr(source_module, "scan_pages", writing_after_the_first_page)
    spec = task_from_dict(
        {
            "name": "busy",
            "source": {
                "url": moto_url,
                "settings": {
                    "StreamStartPosition": "LATEST",
                    "ScanSegments": 1,
                    "ScanPageLimit": 5,
                },
            },
            "target": pg_target_db,
            "migration_type": "full-load-and-cdc",
            "table_mappings": _task("x", moto_url, pg_target_db, table).table_mappings,
        },
        where="test",
    )
    run_task(spec, StateStore(tmp_path / "state.db"))
    want = _dynamo_rows(client, table)
    assert Decimal(200) in want and len(want) == 30
    assert _pg_rows(pg_target_db, table) == want


def _write_during_scan(client: Any, table: str, scanned: int) -> None:
    """Change an item the scan has read, delete another, add one."""
    client.put_item(TableName=table, Item={**_item(scanned), "name": {"S": "changed"}})
    other = next(i for i in range(1, 31) if i != scanned)
    client.delete_item(TableName=table, Key={"id": {"N": str(other)}})
    client.put_item(TableName=table, Item=_item(200))
