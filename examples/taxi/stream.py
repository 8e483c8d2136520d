"""The handler of the trips stream (seed 000's aws-db-workshop-ddb-stream-processor):
each completed trip in the DynamoDB table goes into PostgreSQL's ``trips`` table
(``$TAXI_PG_URL``), once per trip (an upsert on ``trip_info``: records may come twice)."""

from __future__ import annotations

import os
from typing import Any

import psycopg

from opendms.envelope import ChangeRecord

COLUMNS = {  # PostgreSQL column: DynamoDB attribute
    "rider_id": "RIDER_ID",
    "driver_id": "DRIVER_ID",
    "rider_name": "RIDER_NAME",
    "rider_mobile": "RIDER_MOBILE",
    "rider_email": "RIDER_EMAIL",
    "trip_info": "tripinfo",
    "driver_name": "DRIVER_NAME",
    "driver_email": "DRIVER_EMAIL",
    "driver_mobile": "DRIVER_MOBILE",
    "vehicle_id": "VEHICLE_ID",
    "cab_type_id": "CAB_TYPE_ID",
    "vendor_id": "VENDOR_ID",
    "pickup_datetime": "PICKUP_DATETIME",
    "dropoff_datetime": "DROPOFF_DATETIME",
    "store_and_fwd_flag": "STORE_AND_FWD_FLAG",
    "rate_code_id": "RATE_CODE_ID",
    "pickup_longitude": "PICKUP_LONGITUDE",
    "pickup_latitude": "PICKUP_LATITUDE",
    "dropoff_longitude": "DROPOFF_LONGITUDE",
    "dropoff_latitude": "DROPOFF_LATITUDE",
    "passenger_count": "PASSENGER_COUNT",
    "trip_distance": "TRIP_DISTANCE",
    "fare_amount": "FARE_AMOUNT",
    "extra": "EXTRA",
    "mta_tax": "MTA_TAX",
    "tip_amount": "TIP_AMOUNT",
    "tolls_amount": "TOLLS_AMOUNT",
    "improvement_surcharge": "IMPROVEMENT_SURCHARGE",
    "total_amount": "TOTAL_AMOUNT",
    "payment_type": "PAYMENT_TYPE",
    "trip_type": "TRIP_TYPE",
    "status": "STATUS",
}
UPSERT = (
    f"INSERT INTO trips ({', '.join(COLUMNS)}, ehail_fee) "
    f"VALUES ({', '.join(['%s'] * len(COLUMNS))}, 0) "
    "ON CONFLICT (trip_info) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in COLUMNS if c != "trip_info")
)


def on_trips(records: list[ChangeRecord]) -> None:
    completed = [r.after for r in records if r.op in ("I", "U") and r.after and _completed(r.after)]
    if not completed:
        return
    with psycopg.connect(os.environ["TAXI_PG_URL"]) as conn:
        for item in completed:
            conn.execute(UPSERT, [_value(item.get(attr)) for attr in COLUMNS.values()])
        print(f"stream: {len(completed)} completed trip(s) into PostgreSQL", flush=True)


def _completed(item: dict[str, Any]) -> bool:
    return item.get("STATUS") == "Completed"


def _value(value: Any) -> Any:
    return value.replace("T", " ").rstrip("Z") if _is_stamp(value) else value


def _is_stamp(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 20 and value[10] == "T" and value[-1] == "Z"
