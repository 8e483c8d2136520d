"""The DynamoDB-compatible servers the DynamoDB engine will be tested against start,
serve the DynamoDB API with exact numbers, and (moto) the DynamoDB Streams API."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.dynamodb import DynaliteServer, MotoDynamoDBServer, create_table

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(params=["dynalite", "moto"])
def dynamo(request: pytest.FixtureRequest) -> Iterator[Any]:
    server = DynaliteServer() if request.param == "dynalite" else MotoDynamoDBServer()
    with server:
        yield server


def _trips(client: Any, stream: bool = False) -> None:
    extra: dict[str, Any] = {}
    if stream:
        extra["StreamSpecification"] = {
            "StreamEnabled": True,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        }
    create_table(client, "trips", [("rider", "S"), ("trip_id", "N")], **extra)


def test_items_keep_exact_numbers_and_documents(dynamo: Any) -> None:
    client = dynamo.client()
    _trips(client)
    fare = "12345678901234567890.123456789"  # 38 digits fit; never through a float
    client.put_item(
        TableName="trips",
        Item={
            "rider": {"S": "ann"},
            "trip_id": {"N": "1"},
            "fare": {"N": fare},
            "route": {"M": {"from": {"S": "a"}, "stops": {"L": [{"N": "1"}, {"NULL": True}]}}},
            "photo": {"B": b"\x00\xff"},
        },
    )
    item = client.get_item(TableName="trips", Key={"rider": {"S": "ann"}, "trip_id": {"N": "1"}})
    got = item["Item"]
    assert got["fare"] == {"N": fare} and got["photo"] == {"B": b"\x00\xff"}
    assert got["route"]["M"]["stops"]["L"] == [{"N": "1"}, {"NULL": True}]
    assert client.list_tables()["TableNames"] == ["trips"]


def test_moto_serves_the_streams_api() -> None:
    with MotoDynamoDBServer() as dynamo:
        client, streams = dynamo.client(), dynamo.client("dynamodbstreams")
        _trips(client, stream=True)
        client.put_item(TableName="trips", Item={"rider": {"S": "bo"}, "trip_id": {"N": "7"}})
        client.delete_item(TableName="trips", Key={"rider": {"S": "bo"}, "trip_id": {"N": "7"}})
        arn = client.describe_table(TableName="trips")["Table"]["LatestStreamArn"]
        shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        records = streams.get_records(ShardIterator=iterator)["Records"]
        assert [r["eventName"] for r in records] == ["INSERT", "REMOVE"]
        assert records[1]["dynamodb"]["OldImage"] == {"rider": {"S": "bo"}, "trip_id": {"N": "7"}}
