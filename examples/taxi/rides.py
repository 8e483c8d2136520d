"""Seed 000's three ride functions (rider-book-trip, driver-accept-trip,
driver-complete-trip), served by ``opendms serve --function``: each updates the ride's
item in the DynamoDB table ``aws-db-workshop-trips`` (key: ``riderid``, ``tripinfo``)
and answers the item. The table's endpoint is ``$TAXI_DYNAMODB_URL`` (an opendms
``dynamodb://`` URL)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from opendms.endpoints.base import EndpointURL
from opendms.endpoints.dynamodb.client import DynamoClients

TABLE = "aws-db-workshop-trips"


def _table() -> Any:
    clients = DynamoClients(EndpointURL.parse(os.environ["TAXI_DYNAMODB_URL"]))
    return clients.dynamodb()


def _email(rider_id: str) -> str:
    return f"person{int(rider_id)}@example.com"


def _put(item: dict[str, Any]) -> dict[str, Any]:
    from boto3.dynamodb.types import TypeSerializer

    serializer = TypeSerializer()
    wire = {k: serializer.serialize(v) for k, v in item.items()}
    _table().put_item(TableName=TABLE, Item=wire)
    plain: dict[str, Any] = json.loads(json.dumps(item, default=_number))
    return plain


def _get(rider_id: str, trip_info: str) -> dict[str, Any]:
    from boto3.dynamodb.types import TypeDeserializer

    key = {"riderid": {"S": _email(rider_id)}, "tripinfo": {"S": trip_info}}
    found = _table().get_item(TableName=TABLE, Key=key, ConsistentRead=True).get("Item")
    if found is None:
        raise LookupError(f"no trip {trip_info} for rider {rider_id}")
    reader = TypeDeserializer()
    return {k: reader.deserialize(v) for k, v in found.items()}


def _number(value: Any) -> Any:
    return (
        int(value) if isinstance(value, Decimal) and value == value.to_integral() else float(value)
    )


def rider_book(event: dict[str, Any]) -> dict[str, Any]:
    """``rider_id``, ``rider_mobile`` (and, to replay a given ride, ``pickup`` and
    ``trip_id``): a Booked trip."""
    rider = str(event["rider_id"])
    pickup = event.get("pickup") or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    trip_id = int(event.get("trip_id") or datetime.now(UTC).timestamp() % 10_000_000)
    return _put(
        {
            "riderid": _email(rider),
            "tripinfo": f"{pickup},{trip_id:07d}",
            "ID": trip_id,
            "RIDER_ID": int(rider),
            "RIDER_NAME": f"person{int(rider)}",
            "RIDER_EMAIL": _email(rider),
            "RIDER_MOBILE": str(event["rider_mobile"]),
            "PICKUP_DATETIME": pickup,
            "STATUS": "Booked",
        }
    )


def driver_accept(event: dict[str, Any]) -> dict[str, Any]:
    """``rider_id``, ``trip_info`` (and ``driver_id``): the trip InProgress."""
    item = _get(str(event["rider_id"]), str(event["trip_info"]))
    driver = int(event.get("driver_id") or 510909)
    details = {"Name": f"driver{driver}", "Vehicle Details": {"id": "UDT200764", "type": 2}}
    item.update(
        DRIVER_ID=driver,
        DRIVER_NAME=f"driver{driver}",
        DRIVER_EMAIL=f"driver{driver}@taxi.com",
        DRIVER_MOBILE="+11261783124",
        driverid=f"driver{driver}@taxi.com",
        VEHICLE_ID="UDT200764",
        DriverDetails=json.dumps(details),
        CAB_TYPE_ID=2,
        VENDOR_ID=2,
        TRIP_TYPE=2,
        STORE_AND_FWD_FLAG="N",
        PICKUP_LONGITUDE=Decimal("-73.67049"),
        PICKUP_LATITUDE=Decimal("40.808085"),
        STATUS="InProgress",
    )
    return _put(item)


def driver_complete(event: dict[str, Any]) -> dict[str, Any]:
    """``rider_id``, ``trip_info``: the trip Completed, with its fare (figure 9's)."""
    item = _get(str(event["rider_id"]), str(event["trip_info"]))
    pickup = datetime.fromisoformat(str(item["PICKUP_DATETIME"]).replace("Z", "+00:00"))
    dropoff = (pickup + timedelta(minutes=4, seconds=25)).strftime("%Y-%m-%dT%H:%M:%SZ")
    item.update(
        DROPOFF_DATETIME=dropoff,
        DROPOFF_LONGITUDE=Decimal("-73.344961"),
        DROPOFF_LATITUDE=Decimal("40.682586"),
        RATE_CODE_ID=3,
        PASSENGER_COUNT=1,
        TRIP_DISTANCE=38,
        FARE_AMOUNT=Decimal("129.68"),
        EXTRA=0,
        MTA_TAX=Decimal("0.8"),
        TIP_AMOUNT=Decimal("1.71"),
        TOLLS_AMOUNT=Decimal("2.75"),
        IMPROVEMENT_SURCHARGE=1,
        TOTAL_AMOUNT=Decimal("133.15"),
        PAYMENT_TYPE=6,
        STATUS="Completed",
    )
    return _put(item)
