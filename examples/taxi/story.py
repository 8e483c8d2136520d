"""Seed 000's taxi story on local servers, step by step (``bash examples/taxi/run.sh``).

1. PostgreSQL ``taxidb``: ``trips``, ``billing``, ``payment`` and ``billingandpayments()``.
2. A DynamoDB-compatible ``aws-db-workshop-trips`` table with its stream, holding the
   rider's earlier trips (what the workshop migrated from Oracle).
3. ``opendms serve`` with the three ride functions as HTTP calls.
4. A CDC task from the table's stream, whose handler puts completed trips into
   PostgreSQL (the workshop's stream-processor Lambda).
5. A ride: riderbook, driveraccept, drivercomplete; the trip arrives in PostgreSQL.
6. ``billingandpayments()`` run by a scheduled workflow (Step Functions API).
7. The federated query of the seed's last figure: the ride in both stores, compared.

:func:`run` takes the servers' URLs (the test gives its own); ``main`` starts private
servers with the test harness and stops them at the end.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
TABLE = "aws-db-workshop-trips"
RIDER, MOBILE = "71463", "+11492133668"
PICKUP, TRIP_ID = "2024-04-08T04:53:55Z", "780090"
Say = Callable[[str], None]
COMPARE = (
    "SELECT ddb.riderid, ddb.tripinfo,"
    ' ddb.fare_amount AS "DDB-Fareamount", rdb.fare_amount AS "RDB-Fareamount",'
    ' ddb.tolls_amount AS "DDB-Tollsamount", rdb.tolls_amount AS "RDB-Tollsamount",'
    ' ddb.passenger_count AS "DDB-passenger_count", rdb.passenger_count AS "RDB-passenger_count",'
    ' ddb.tip_amount AS "DDB-Tipamount", rdb.tip_amount AS "RDB-Tipamount",'
    ' ddb.total_amount AS "DDB-Totalamount", rdb.total_amount AS "RDB-Totalamount"'
    f' FROM ddb.dynamodb."{TABLE}" ddb, taxi.public.trips rdb'
    " WHERE ddb.riderid = rdb.rider_email AND ddb.tripinfo = rdb.trip_info"
)


def _wait(check: Callable[[], Any], seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {seconds:.0f} s waiting for {what}")
        time.sleep(0.2)


def _opendms() -> str:
    return str(Path(sys.executable).parent / "opendms")


# -- 1 and 2: the two stores --------------------------------------------------------


def make_taxidb(pg_url: str) -> None:
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute((HERE / "taxidb.sql").read_text())


def history() -> list[dict[str, Any]]:
    """The rider's earlier trips (figure 13's first four), as the table held them."""
    earlier = [
        ("2016-01-13T07:36:00Z,1570959", "6.5", "0", "0.88", 559271),
        ("2016-01-20T13:04:13Z,1573188", "6.5", "0", "1.13", 543324),
        ("2016-01-21T19:31:36Z,1519473", "8", "1", "1.4", 543076),
        ("2016-01-31T23:23:45Z,1559147", "13", "0.5", "3.5", 547104),
    ]
    items = []
    for tripinfo, fare, extra, distance, driver in earlier:
        pickup = tripinfo.split(",")[0]
        items.append(
            {
                "riderid": f"person{RIDER}@example.com",
                "tripinfo": tripinfo,
                "ID": int(tripinfo.split(",")[1]),
                "RIDER_ID": int(RIDER),
                "RIDER_NAME": f"person{RIDER}",
                "RIDER_EMAIL": f"person{RIDER}@example.com",
                "RIDER_MOBILE": MOBILE,
                "PICKUP_DATETIME": pickup,
                "DROPOFF_DATETIME": pickup,
                "DRIVER_ID": driver,
                "DRIVER_NAME": f"driver{driver}",
                "DRIVER_EMAIL": f"driver{driver}@taxi.com",
                "DRIVER_MOBILE": "+11000000000",
                "driverid": f"driver{driver}@taxi.com",
                "VEHICLE_ID": "UDT100000",
                "DriverDetails": "{}",
                "CAB_TYPE_ID": 2,
                "VENDOR_ID": 2,
                "TRIP_TYPE": 2,
                "STORE_AND_FWD_FLAG": "N",
                "RATE_CODE_ID": 1,
                "PICKUP_LONGITUDE": Decimal("-73.9"),
                "PICKUP_LATITUDE": Decimal("40.7"),
                "DROPOFF_LONGITUDE": Decimal("-73.9"),
                "DROPOFF_LATITUDE": Decimal("40.7"),
                "PASSENGER_COUNT": 1,
                "TRIP_DISTANCE": Decimal(distance),
                "FARE_AMOUNT": Decimal(fare),
                "EXTRA": Decimal(extra),
                "MTA_TAX": Decimal("0.5"),
                "TIP_AMOUNT": 0,
                "TOLLS_AMOUNT": 0,
                "IMPROVEMENT_SURCHARGE": Decimal("0.3"),
                "TOTAL_AMOUNT": Decimal(fare) + Decimal(extra) + Decimal("0.8"),
                "PAYMENT_TYPE": 1,
                "STATUS": "Processed",
            }
        )
    return items


def make_trips_table(ddb_url: str) -> None:
    from boto3.dynamodb.types import TypeSerializer

    from opendms.endpoints.base import EndpointURL
    from opendms.endpoints.dynamodb.client import DynamoClients

    client = DynamoClients(EndpointURL.parse(ddb_url)).dynamodb()
    client.create_table(
        TableName=TABLE,
        KeySchema=[
            {"AttributeName": "riderid", "KeyType": "HASH"},
            {"AttributeName": "tripinfo", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "riderid", "AttributeType": "S"},
            {"AttributeName": "tripinfo", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    serializer = TypeSerializer()
    for item in history():
        client.put_item(TableName=TABLE, Item={k: serializer.serialize(v) for k, v in item.items()})


# -- 3: the server with the ride functions ---------------------------------------------


@contextmanager
def serving(work: Path, env: dict[str, str]) -> Iterator[tuple[str, str]]:
    """``opendms serve`` in the background: (its URL, its token)."""
    from tests.support.servers import free_port

    port = free_port()
    state = work / "server"
    functions = {
        "riderbook": "examples.taxi.rides:rider_book",
        "driveraccept": "examples.taxi.rides:driver_accept",
        "drivercomplete": "examples.taxi.rides:driver_complete",
    }
    args = [_opendms(), "serve", "--state", str(state), "--port", str(port)]
    for name, path in functions.items():
        args += ["--function", f"{name}={path}"]
    url = f"http://127.0.0.1:{port}"
    with background(args, env, work / "server.log") as proc:
        _wait(lambda: _healthy(url, proc), 60, "opendms serve")
        yield url, (state / "token").read_text().strip()


@contextmanager
def background(args: list[str], env: dict[str, str], log: Path) -> Iterator[Any]:
    """``args`` run from the repository in the background (output to ``log``), stopped
    with SIGTERM (then killed) when the block ends."""
    with log.open("wb") as out:
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=out)
        try:
            yield proc
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()


def _healthy(url: str, proc: subprocess.Popen[bytes]) -> bool:
    if proc.poll() is not None:
        raise RuntimeError(f"opendms serve exited with {proc.returncode}")
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def call(url: str, token: str, function: str, **params: str) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{url}/functions/{function}?{urlencode(params)}",
        headers={"Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request, timeout=60) as answer:
        found: dict[str, Any] = json.loads(answer.read())
    return found


# -- 4: the stream task -------------------------------------------------------------


@contextmanager
def streaming(work: Path, ddb_url: str, env: dict[str, str]) -> Iterator[Path]:
    """The CDC task from the trips table's stream (its handler writes PostgreSQL), in
    the background until the block ends: the state file."""
    state = work / "tasks.db"
    spec = {
        "name": "trips-stream",
        "source": ddb_url,
        # a CDC file (and the handler's batch) each second, not DMS's default 60 s
        "target": {"url": f"file://{work / 'lake'}", "settings": {"CdcMaxBatchInterval": 1}},
        "migration_type": "full-load-and-cdc",
        "table_mappings": {
            "rules": [
                {
                    "rule-type": "selection",
                    "rule-id": "1",
                    "rule-name": "trips",
                    "object-locator": {"schema-name": "dynamodb", "table-name": TABLE},
                    "rule-action": "include",
                }
            ]
        },
        "handlers": [{"function": "examples.taxi.stream:on_trips", "name": "to-postgresql"}],
    }
    file = work / "trips-stream.json"
    file.write_text(json.dumps(spec, indent=2))
    args = [_opendms(), "--state", str(state), "task", "run", str(file), "--follow", "--quiet"]
    with background(args, env, work / "task.log") as proc:
        _wait(lambda: _live(state, proc), 120, "the stream task to replicate")
        yield state


def _live(state: Path, proc: subprocess.Popen[bytes]) -> bool:
    if proc.poll() is not None:
        raise RuntimeError(f"the stream task exited with {proc.returncode} (see task.log)")
    if not state.exists():
        return False
    from opendms.state import StateStore

    store = StateStore(state)
    try:
        record = store.task("trips-stream")
    finally:
        store.close()
    return record is not None and record.phase == "ongoing replication"


# -- 6: the scheduled billing workflow ----------------------------------------------------


def billing_machine() -> str:
    return json.dumps(
        {
            "Comment": "Bill the completed trips: seed 000's billingandpayments()",
            "StartAt": "Billing And Payments",
            "States": {
                "Billing And Payments": {
                    "Type": "Task",
                    "Resource": "opendms:sql",
                    "Parameters": {"Endpoint": "taxidb", "Statement": "CALL billingandpayments()"},
                    "Retry": [{"ErrorEquals": ["States.ALL"], "MaxAttempts": 3}],
                    "Next": "Billing",
                },
                "Billing": {
                    "Type": "Task",
                    "Resource": "opendms:sql",
                    "Parameters": {
                        "Endpoint": "taxidb",
                        "Statement": "SELECT driver_id, billing_cycle, billing_amount, rides_total,"
                        " billing_status FROM billing ORDER BY id DESC LIMIT 1",
                    },
                    "OutputPath": "$.Rows[0]",
                    "End": True,
                },
            },
        }
    )


def schedule_billing(url: str, pg_url: str) -> dict[str, Any]:
    """The DMS endpoint ``taxidb``, the ``billing`` state machine on a 5-second
    schedule; the first scheduled execution's output once it has run."""
    import boto3

    session = boto3.session.Session()
    keys = {"region_name": "us-east-1", "aws_access_key_id": "x", "aws_secret_access_key": "y"}
    dms = session.client("dms", endpoint_url=url, **keys)
    pg = urlsplit(pg_url)
    dms.create_endpoint(
        EndpointIdentifier="taxidb",
        EndpointType="target",
        EngineName="postgres",
        ServerName=pg.hostname,
        Port=pg.port,
        Username=pg.username,
        Password=pg.password or "",
        DatabaseName=pg.path.lstrip("/"),
    )
    sfn = session.client("stepfunctions", endpoint_url=url, **keys)
    tags = [{"key": "opendms:schedule", "value": "* * * * * */5"}]  # every 5 s
    arn = sfn.create_state_machine(
        name="billing", definition=billing_machine(), roleArn="local", tags=tags
    )["stateMachineArn"]

    def done() -> dict[str, Any] | None:
        for e in sfn.list_executions(stateMachineArn=arn, statusFilter="SUCCEEDED")["executions"]:
            found: dict[str, Any] = sfn.describe_execution(executionArn=e["executionArn"])
            return {"name": e["name"], "output": json.loads(found["output"])}
        return None

    ran: dict[str, Any] = _wait(done, 90, "a scheduled billing execution")
    sfn.tag_resource(resourceArn=arn, tags=[{"key": "opendms:schedule", "value": ""}])
    return ran


# -- 7: the federated query --------------------------------------------------------------


def compare(pg_url: str, ddb_url: str, env: dict[str, str]) -> list[dict[str, Any]]:
    args = [_opendms(), "query", COMPARE, "--format", "jsonl"]
    args += ["--endpoint", f"ddb={ddb_url}", "--endpoint", f"taxi={pg_url}"]
    done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"opendms query failed: {done.stderr.strip()}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


# -- the story -------------------------------------------------------------------------


def run(pg_url: str, ddb_url: str, work: Path, say: Say = print) -> dict[str, Any]:
    """The whole story; what each step gave (the test checks it)."""
    work.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "TAXI_DYNAMODB_URL": ddb_url,
        "TAXI_PG_URL": pg_url,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    out: dict[str, Any] = {}
    say("1. PostgreSQL taxidb: trips, billing, payment and billingandpayments()")
    make_taxidb(pg_url)
    say(f"2. DynamoDB table {TABLE} with its stream and {len(history())} earlier trips")
    make_trips_table(ddb_url)
    with serving(work, env) as (url, token):
        say(f"3. opendms serve at {url} with riderbook, driveraccept, drivercomplete")
        with streaming(work, ddb_url, env):
            say("4. CDC task trips-stream: the table's stream -> handler -> PostgreSQL trips")
            out["rides"] = ride(url, token, say)
            out["trip"] = _wait(lambda: _pg_trip(pg_url), 120, "the trip in PostgreSQL")
            say(f"   the trip is in PostgreSQL: id {out['trip']['id']}, {out['trip']['status']}")
        say("6. billingandpayments() by the scheduled workflow 'billing' (every 5 s)")
        out["billing"] = schedule_billing(url, pg_url)
        say(f"   execution {out['billing']['name']}: {json.dumps(out['billing']['output'])}")
    say("7. The federated query: the ride in DynamoDB and in PostgreSQL")
    out["compared"] = compare(pg_url, ddb_url, env)
    for row in out["compared"]:
        say("   " + json.dumps(row))
    same = all(
        Decimal(str(r[f"DDB-{name}"])) == Decimal(str(r[f"RDB-{name}"]))
        for r in out["compared"]
        for name in ("Fareamount", "Tollsamount", "passenger_count", "Tipamount", "Totalamount")
    )
    out["intact"] = bool(out["compared"]) and same
    say("The ride arrived intact." if out["intact"] else "The stores DIFFER.")
    return out


def ride(url: str, token: str, say: Say) -> list[dict[str, Any]]:
    booked = call(url, token, "riderbook", rider_id=RIDER, rider_mobile=MOBILE, pickup=PICKUP,
                  trip_id=TRIP_ID)  # fmt: skip
    say(f"5. riderbook: trip {booked['tripinfo']} {booked['STATUS']}")
    trip = booked["tripinfo"]
    accepted = call(url, token, "driveraccept", rider_id=RIDER, trip_info=trip)
    say(f"   driveraccept: driver {accepted['DRIVER_ID']} {accepted['STATUS']}")
    completed = call(url, token, "drivercomplete", rider_id=RIDER, trip_info=trip)
    say(f"   drivercomplete: fare {completed['TOTAL_AMOUNT']} {completed['STATUS']}")
    return [booked, accepted, completed]


def _pg_trip(pg_url: str) -> dict[str, Any] | None:
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(pg_url, row_factory=dict_row) as conn:
        found = conn.execute(
            "SELECT * FROM trips WHERE trip_info = %s", (f"{PICKUP},{int(TRIP_ID):07d}",)
        ).fetchone()
    return dict(found) if found else None


def main() -> int:
    import tempfile

    sys.path.insert(0, str(ROOT))
    from tests.support.dynamodb import MotoDynamoDBServer
    from tests.support.servers import PostgresServer

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    with tempfile.TemporaryDirectory(prefix="opendms-taxi-") as tmp:
        print("Starting a private PostgreSQL and a DynamoDB-compatible server (moto) ...")
        with PostgresServer() as pg, MotoDynamoDBServer() as ddb:
            result = run(pg.create_database("taxidb"), ddb.url(), Path(tmp))
    return 0 if result["intact"] else 1


if __name__ == "__main__":
    sys.exit(main())
