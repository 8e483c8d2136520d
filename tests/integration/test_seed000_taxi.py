"""Seed 000 end to end: taxi ``trips`` from PostgreSQL into DynamoDB with the DMS
``map-record-to-document`` rule and a composite key (rider, trip), followed by CDC; then
the workshop's "DynamoDB Streams -> function -> PostgreSQL" path as an ordinary opendms
task DynamoDB -> PostgreSQL carrying further item changes back.

Judged independently: DynamoDB items are read with boto3 and compared with items the
test builds by hand from the source rows (the mapping's meaning, written out); the
PostgreSQL rows are read with psycopg and compared with the DynamoDB items decoded here
(a DynamoDB source reads the members of ``_doc`` as columns, so the trips come back as
relational rows). The source's deletes carry only the primary key (PostgreSQL's default
replica identity) while the DynamoDB key is made of other columns: the target finds
those items by a Scan.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from opendms.config import TaskSpec, task_from_dict
from opendms.service.run import run_task
from opendms.state import StateStore
from tests.oracles.rows import run_sql

pytestmark = pytest.mark.dynamodb

Item = dict[str, Any]

SETUP = [
    "CREATE TABLE trips (id int PRIMARY KEY, rider_id int NOT NULL, rider_email text NOT NULL,"
    " trip_info text NOT NULL, driver_id int, fare_amount numeric(10,2),"
    " pickup_datetime timestamp, status text)",
    "INSERT INTO trips VALUES"
    " (2000001, 71463, 'person71463@example.com', '2024-04-08T04:53:55Z,0780090', 510909,"
    "  129.68, '2024-04-08 04:53:55', 'Booked'),"
    " (2000002, 71463, 'person71463@example.com', '2024-04-09T10:00:00Z,0780091', NULL,"
    "  NULL, '2024-04-09 10:00:00', 'Booked'),"
    " (2000003, 80001, 'person80001@example.com', '2024-04-09T11:30:00Z,0780092', 510910,"
    "  7.25, '2024-04-09 11:30:00', 'Accepted')",
]
CHANGES = [
    "INSERT INTO trips VALUES (2000004, 80002, 'person80002@example.com',"
    " '2024-04-10T08:00:00Z,0780093', 510911, 42.00, '2024-04-10 08:00:00', 'Booked')",
    "UPDATE trips SET status = 'Completed', fare_amount = 133.15 WHERE id = 2000001",
    "UPDATE trips SET driver_id = 510912, status = 'Accepted' WHERE id = 2000002",
    "DELETE FROM trips WHERE id = 2000003",
]
COLUMNS = ("id", "rider_id", "rider_email", "trip_info", "driver_id", "fare_amount",
           "pickup_datetime", "status")  # fmt: skip


def _rules(table: str) -> dict[str, Any]:
    locator = {"schema-name": "public", "table-name": "trips"}
    return {
        "rules": [
            {"rule-type": "selection", "rule-id": "1", "rule-name": "trips",
             "object-locator": locator, "rule-action": "include"},
            {"rule-type": "object-mapping", "rule-id": "2", "rule-name": "trips-doc",
             "rule-action": "map-record-to-document", "object-locator": locator,
             "target-table-name": table,
             "mapping-parameters": {
                 "partition-key-name": "riderid",
                 "sort-key-name": "tripinfo",
                 "attribute-mappings": [
                     {"target-attribute-name": "riderid", "attribute-type": "scalar",
                      "attribute-sub-type": "string", "value": "${rider_email}"},
                     {"target-attribute-name": "tripinfo", "attribute-type": "scalar",
                      "attribute-sub-type": "string", "value": "${trip_info}"},
                 ],
             }},
        ]
    }  # fmt: skip


def _task(name: str, source: str, target: Any, mappings: dict[str, Any]) -> TaskSpec:
    return task_from_dict(
        {
            "name": name,
            "source": source,
            "target": target,
            "migration_type": "full-load-and-cdc",
            "table_mappings": mappings,
        },
        where="test",
    )


def _expected_item(row: tuple[Any, ...]) -> Item:
    """What the rule means for one source row: the two key templates at the top level,
    every column in ``_doc`` (DMS: columns not excluded), NULLs dropped, numbers as N
    with their exact decimal text, the timestamp as ISO text."""
    values = dict(zip(COLUMNS, row, strict=True))
    doc: Item = {}
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, int | Decimal):
            doc[name] = {"N": str(value)}
        elif hasattr(value, "isoformat"):
            doc[name] = {"S": value.isoformat()}
        else:
            doc[name] = {"S": value}
    return {
        "riderid": {"S": values["rider_email"]},
        "tripinfo": {"S": values["trip_info"]},
        "_doc": {"M": doc},
    }


def _scan(client: Any, table: str) -> list[Item]:
    items = client.scan(TableName=table, ConsistentRead=True)["Items"]
    return sorted(items, key=lambda i: (i["riderid"]["S"], i["tripinfo"]["S"]))


def _source_items(url: str) -> list[Item]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(f"SELECT {', '.join(COLUMNS)} FROM trips").fetchall()
    items = [_expected_item(r) for r in rows]
    return sorted(items, key=lambda i: (i["riderid"]["S"], i["tripinfo"]["S"]))


def _plain(value: Item) -> Any:
    """The test's own reading of an AttributeValue."""
    tag, inner = next(iter(value.items()))
    if tag == "N":
        return Decimal(inner)
    if tag == "M":
        return {k: _plain(v) for k, v in inner.items()}
    if tag == "L":
        return [_plain(v) for v in inner]
    return inner


def _pg_trips(url: str, table: str) -> list[Item]:
    """The PostgreSQL copy of the DynamoDB table, each row without its NULL columns (an
    item has no attribute for them)."""
    with psycopg.connect(url) as conn:
        cur = conn.execute(f'SELECT * FROM dynamodb."{table}"')
        names = [d.name for d in cur.description or []]
        rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    out = [{k: v for k, v in row.items() if v is not None} for row in rows]
    return sorted(out, key=lambda r: (r["riderid"], r["tripinfo"]))


def _dynamo_rows(client: Any, table: str) -> list[Item]:
    """The items as the relational rows they stand for: the key attributes and the
    members of ``_doc`` (the source reads a document's members as columns)."""
    out = []
    for item in _scan(client, table):
        plain = {k: _plain(v) for k, v in item.items()}
        out.append({k: v for k, v in plain.items() if k != "_doc"} | plain.get("_doc", {}))
    return out


def test_seed_000_trips_to_dynamodb_and_back(
    moto_server: Any, moto_url: str, pg_db: str, pg_target_db: str, tmp_path: Path
) -> None:
    client = moto_server.client()
    table = f"aws-db-workshop-trips-{uuid.uuid4().hex[:8]}"
    run_sql(pg_db, SETUP)
    store = StateStore(tmp_path / "state.db")
    # 1. PostgreSQL -> DynamoDB: full load, then CDC, every item as the rule says
    target = {"url": moto_url, "settings": {"StreamViewType": "NEW_AND_OLD_IMAGES"}}
    to_dynamo = _task("to-dynamodb", pg_db, target, _rules(table))
    run_task(to_dynamo, store)
    assert _scan(client, table) == _source_items(pg_db)
    run_sql(pg_db, CHANGES)
    run_task(to_dynamo, store)
    items = _scan(client, table)
    assert items == _source_items(pg_db)
    assert len(items) == 3 and not any("0780092" in i["tripinfo"]["S"] for i in items)
    completed = next(i for i in items if i["tripinfo"]["S"].endswith("0780090"))
    assert completed["_doc"]["M"]["status"] == {"S": "Completed"}
    assert completed["_doc"]["M"]["fare_amount"] == {"N": "133.15"}

    # 2. DynamoDB (its stream) -> PostgreSQL: the table, then further item changes
    selection = {"rules": [{"rule-type": "selection", "rule-id": "1", "rule-name": "trips",
                            "object-locator": {"schema-name": "dynamodb", "table-name": table},
                            "rule-action": "include"}]}  # fmt: skip
    to_pg = _task("to-postgres", moto_url, pg_target_db, selection)
    run_task(to_pg, store)
    assert _pg_trips(pg_target_db, table) == _dynamo_rows(client, table)
    key = {"riderid": {"S": "person80002@example.com"},
           "tripinfo": {"S": "2024-04-10T08:00:00Z,0780093"}}  # fmt: skip
    client.update_item(
        TableName=table,
        Key=key,
        UpdateExpression="SET #d.#s = :s",
        ExpressionAttributeNames={"#d": "_doc", "#s": "status"},
        ExpressionAttributeValues={":s": {"S": "Completed"}},
    )
    client.put_item(
        TableName=table,
        Item={
            "riderid": {"S": "person90000@example.com"},
            "tripinfo": {"S": "2024-04-11T09:00:00Z,0780094"},
            "_doc": {"M": {"id": {"N": "2000005"}, "status": {"S": "Booked"},
                          "fare_amount": {"N": "12345678901234567890.12"}}},
        },
    )  # fmt: skip
    client.delete_item(
        TableName=table,
        Key={"riderid": {"S": "person71463@example.com"},
             "tripinfo": {"S": "2024-04-09T10:00:00Z,0780091"}},
    )  # fmt: skip
    run_task(to_pg, store)
    got, want = _pg_trips(pg_target_db, table), _dynamo_rows(client, table)
    assert got == want and len(got) == 3
    updated = next(r for r in got if r["riderid"] == "person80002@example.com")
    assert updated["status"] == "Completed" and updated["id"] == 2000004
    new = next(r for r in got if r["riderid"] == "person90000@example.com")
    assert new["fare_amount"] == Decimal("12345678901234567890.12")
