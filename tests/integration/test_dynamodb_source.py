"""DynamoDB as a source, full load: every attribute type read exactly through parallel
``Scan`` segments over many pages, on dynalite and on moto (real servers)."""

from __future__ import annotations

import base64
import json
import uuid
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

from opendms.endpoints import open_source
from opendms.model import ColumnType, Kind, ReadPlan, TableRef

BIG = "12345678901234567890.123456789012345678"  # 38 digits
ITEM_ONE: dict[str, Any] = {
    "pk": {"S": "one"},
    "sk": {"N": "1"},
    "big": {"N": BIG},
    "tiny": {"N": "-1E-130"},
    "huge": {"N": "9.9999999999999999999999999999999999999E+125"},
    "raw": {"B": b"\x00\x01\xff"},
    "flag": {"BOOL": True},
    "nothing": {"NULL": True},
    "doc": {
        "M": {
            "n": {"N": "0.1"},
            "l": {"L": [{"S": "x"}, {"BOOL": False}, {"NULL": True}, {"B": b"\xfe"}]},
            "ss": {"SS": ["a"]},
        }
    },
    "names": {"SS": ["b", "a"]},
    "nums": {"NS": ["3", "1.5"]},
    "blobs": {"BS": [b"\x01"]},
    "text": {"S": "héllo 𝄞 \n 'q'"},
    "mixed": {"S": "text"},
}
ITEM_TWO: dict[str, Any] = {"pk": {"S": "two"}, "sk": {"N": "2"}, "mixed": {"N": "5"}}


def _create(client: Any, name: str, stream: bool = False) -> None:
    args: dict[str, Any] = {
        "TableName": name,
        "KeySchema": [
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        "AttributeDefinitions": [
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "N"},
        ],
        "BillingMode": "PAY_PER_REQUEST",
    }
    if stream:
        args["StreamSpecification"] = {
            "StreamEnabled": True,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        }
    client.create_table(**args)
    client.get_waiter("table_exists").wait(TableName=name)


@pytest.fixture(params=["dynalite", "moto"])
def server(request: pytest.FixtureRequest) -> tuple[Any, str]:
    """(server, opendms URL) of dynalite and of moto."""
    url = request.getfixturevalue(f"{request.param}_url")
    return request.getfixturevalue(f"{request.param}_server"), url


def _read(url: str, name: str, settings: dict[str, Any]) -> tuple[Any, list[dict[str, Any]]]:
    source = open_source(url, settings)
    try:
        assert TableRef("dynamodb", name) in source.list_tables()
        table = source.describe(TableRef("dynamodb", name))
        plan = ReadPlan(table, tuple(c.name for c in table.columns), batch_rows=50)
        batches = list(source.read(plan, None))
    finally:
        source.close()
    return table, pa.Table.from_batches(batches).to_pylist()


def test_every_attribute_type_is_read_exactly(server: tuple[Any, str]) -> None:
    srv, url = server
    client, name = srv.client(), f"every_{uuid.uuid4().hex[:8]}"
    _create(client, name)
    client.put_item(TableName=name, Item=ITEM_ONE)
    client.put_item(TableName=name, Item=ITEM_TWO)
    table, rows = _read(url, name, {})
    kinds = {c.name: c.type.kind for c in table.columns}
    assert list(kinds)[:2] == ["pk", "sk"] and table.primary_key == ("pk", "sk")
    assert kinds == {
        "pk": Kind.STRING,
        "sk": Kind.DECIMAL,
        "big": Kind.DECIMAL,
        "blobs": Kind.JSON,
        "doc": Kind.JSON,
        "flag": Kind.BOOL,
        "huge": Kind.DECIMAL,
        "mixed": Kind.JSON,
        "names": Kind.JSON,
        "nothing": Kind.JSON,
        "nums": Kind.JSON,
        "raw": Kind.BINARY,
        "text": Kind.STRING,
        "tiny": Kind.DECIMAL,
    }
    one, two = sorted(rows, key=lambda r: r["pk"])
    assert Decimal(one["big"]) == Decimal(BIG) and one["big"] == BIG
    assert Decimal(one["tiny"]) == Decimal("-1E-130")
    assert Decimal(one["huge"]) == Decimal("9.9999999999999999999999999999999999999E+125")
    assert one["raw"] == b"\x00\x01\xff" and one["flag"] is True and one["nothing"] is None
    assert one["text"] == "héllo 𝄞 \n 'q'" and one["sk"] == "1"
    doc = json.loads(one["doc"], parse_float=Decimal)
    assert doc == {
        "n": Decimal("0.1"),
        "l": ["x", False, None, base64.b64encode(b"\xfe").decode()],
        "ss": ["a"],
    }
    assert sorted(json.loads(one["names"])) == ["a", "b"]
    assert sorted(json.loads(one["nums"], parse_float=Decimal)) == [Decimal("1.5"), 3]
    assert json.loads(one["blobs"]) == [base64.b64encode(b"\x01").decode()]
    assert json.loads(one["mixed"]) == "text" and json.loads(two["mixed"]) == 5
    assert {k: v for k, v in two.items() if v is not None} == {"pk": "two", "sk": "2", "mixed": "5"}


def test_parallel_segments_read_every_item_once_over_many_pages(server: tuple[Any, str]) -> None:
    srv, url = server
    client, name = srv.client(), f"pages_{uuid.uuid4().hex[:8]}"
    _create(client, name)
    want = {}
    for i in range(120):
        item = {"pk": {"S": f"k{i:04d}"}, "sk": {"N": str(i)}, "v": {"N": f"{i}.{i:035d}"}}
        want[f"k{i:04d}"] = Decimal(item["v"]["N"])
        client.put_item(TableName=name, Item=item)
    table, rows = _read(url, name, {"ScanSegments": 3, "ScanPageLimit": 5, "SampleItems": 20})
    assert [c.name for c in table.columns] == ["pk", "sk", "v"]
    assert len(rows) == 120
    assert {r["pk"]: Decimal(r["v"]) for r in rows} == want


def test_a_column_missing_at_the_top_level_is_read_from_the_doc_map(
    server: tuple[Any, str],
) -> None:
    srv, url = server
    client, name = srv.client(), f"doc_{uuid.uuid4().hex[:8]}"
    _create(client, name)
    doc = {"M": {"city": {"S": "Oslo"}, "n": {"N": "7"}}}
    client.put_item(TableName=name, Item={"pk": {"S": "a"}, "sk": {"N": "1"}, "_doc": doc})
    table, rows = _read(url, name, {})
    assert [c.name for c in table.columns] == ["pk", "sk", "city", "n"]
    assert table.column("n").type == ColumnType(Kind.DECIMAL)
    assert rows == [{"pk": "a", "sk": "1", "city": "Oslo", "n": "7"}]


def test_a_value_of_another_type_than_sampled_is_rejected_not_altered(
    server: tuple[Any, str],
) -> None:
    srv, url = server
    client, name = srv.client(), f"rej_{uuid.uuid4().hex[:8]}"
    _create(client, name)
    client.put_item(TableName=name, Item={"pk": {"S": "a"}, "sk": {"N": "1"}, "n": {"N": "1"}})
    source = open_source(url, {})
    try:
        table = source.describe(TableRef("dynamodb", name))
        client.put_item(TableName=name, Item={"pk": {"S": "b"}, "sk": {"N": "2"}, "n": {"S": "x"}})
        plan = ReadPlan(table, ("pk", "n"))
        batches = list(source.read(plan, None))
    finally:
        source.close()
    from opendms.arrowutil import read_rejections

    rows = pa.Table.from_batches(batches).sort_by("pk").to_pylist()
    assert rows == [{"pk": "a", "n": "1"}, {"pk": "b", "n": None}]
    (rejection,) = [r for b in batches for r in read_rejections(b)]
    assert rejection[1] == "n" and "S value" in rejection[2]
