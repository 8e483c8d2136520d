"""The source conformance tables made natively on a DynamoDB endpoint (no SQL).

``everything``: one attribute of each DynamoDB type, read back as the canonical kinds the
DynamoDB source infers (see :mod:`opendms.endpoints.dynamodb.infer`). ``kv``: a table
with a stream; DynamoDB has no declared columns, so a seed item (written before the
stream is enabled, so it is no change) gives it its column ``v``."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3

from opendms.model import Kind

Row = dict[str, Any]

ITEMS: list[dict[str, Any]] = [
    {
        "id": {"N": "1"},
        "big": {"N": "12345678901234567890.123456789012345678"},
        "bin": {"B": b"\x00\x01\xff\t\n\\"},
        "bins": {"BS": [b"\x01"]},
        "flag": {"BOOL": True},
        "list": {"L": [{"N": "1"}, {"S": "𝄞"}, {"NULL": True}]},
        "map": {"M": {"a": {"N": "1.5"}, "b": {"M": {"c": {"BOOL": False}}}}},
        "nil": {"NULL": True},
        "nums": {"NS": ["7"]},
        "strs": {"SS": ["x"]},
        "txt": {"S": "héllo 𝄞 😀 \t tab\nnewline \\ backslash 'quote\" NULL"},
    },
    {"id": {"N": "2"}},
    {
        "id": {"N": "3"},
        "big": {"N": "-9.9999999999999999999999999999999999999E+125"},
        "bin": {"B": b"\xfe"},
        "flag": {"BOOL": False},
        "list": {"L": []},
        "map": {"M": {}},
        "txt": {"S": "ünïcödé ✓ 𠜎"},
    },
]

KINDS: dict[str, tuple[Kind, Kind | None]] = {
    "id": (Kind.DECIMAL, None),
    "big": (Kind.DECIMAL, None),
    "bin": (Kind.BINARY, None),
    "bins": (Kind.JSON, None),
    "flag": (Kind.BOOL, None),
    "list": (Kind.JSON, None),
    "map": (Kind.JSON, None),
    "nil": (Kind.JSON, None),
    "nums": (Kind.JSON, None),
    "strs": (Kind.JSON, None),
    "txt": (Kind.STRING, None),
}

_ROW1: Row = {
    "id": Decimal(1),
    "big": Decimal("12345678901234567890.123456789012345678"),
    "bin": b"\x00\x01\xff\t\n\\",
    "bins": ["AQ=="],
    "flag": True,
    "list": [1, "𝄞", None],
    "map": {"a": 1.5, "b": {"c": False}},
    "nil": None,
    "nums": [7],
    "strs": ["x"],
    "txt": "héllo 𝄞 😀 \t tab\nnewline \\ backslash 'quote\" NULL",
}
_ROW3: Row = {
    "id": Decimal(3),
    "big": Decimal("-9.9999999999999999999999999999999999999E+125"),
    "bin": b"\xfe",
    "flag": False,
    "list": [],
    "map": {},
    "txt": "ünïcödé ✓ 𠜎",
}
EXPECTED: list[Row] = [_ROW1, {"id": Decimal(2)}, _ROW3]


def client(url: str) -> Any:
    """A boto3 DynamoDB client of a ``dynamodb://`` test URL."""
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    return boto3.session.Session().client(
        "dynamodb", region_name=query.get("region"), endpoint_url=query.get("endpoint_url")
    )


def fresh_table(db: Any, name: str, stream: bool = False) -> None:
    """Create table ``name`` keyed by a number ``id`` (dropping one left by a run before)."""
    if name in db.list_tables()["TableNames"]:
        db.delete_table(TableName=name)
        db.get_waiter("table_not_exists").wait(TableName=name)
    args: dict[str, Any] = {
        "TableName": name,
        "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "N"}],
        "BillingMode": "PAY_PER_REQUEST",
    }
    if stream:
        args["StreamSpecification"] = {
            "StreamEnabled": True,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        }
    db.create_table(**args)
    db.get_waiter("table_exists").wait(TableName=name)


def create_everything(url: str) -> None:
    db = client(url)
    fresh_table(db, "everything")
    for item in ITEMS:
        db.put_item(TableName="everything", Item=item)


def create_kv(url: str) -> None:
    """``kv`` with a seed item (its column ``v``), then its stream enabled."""
    db = client(url)
    fresh_table(db, "kv")
    db.put_item(TableName="kv", Item={"id": {"N": "0"}, "v": {"S": "seed"}})
    db.update_table(
        TableName="kv",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )


def change_kv(url: str) -> None:
    """Insert, update and delete item 1 of ``kv``."""
    db = client(url)
    db.put_item(TableName="kv", Item={"id": {"N": "1"}, "v": {"S": "a"}})
    db.update_item(
        TableName="kv",
        Key={"id": {"N": "1"}},
        UpdateExpression="SET v = :v",
        ExpressionAttributeValues={":v": {"S": "b"}},
    )
    db.delete_item(TableName="kv", Key={"id": {"N": "1"}})
