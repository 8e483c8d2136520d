"""examples/taxi end to end on the test servers: seed 000's story from the ride functions
through the DynamoDB stream and its handler into PostgreSQL, billing by a scheduled
workflow, and the federated query comparing the ride in both stores."""

from __future__ import annotations

import sys
from decimal import Decimal
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.dynamodb, pytest.mark.timeout(600)]


def test_the_taxi_story_runs_and_the_ride_arrives_intact(
    pg_db: str, moto_url: str, tmp_path: Path
) -> None:
    sys.path.insert(0, str(ROOT))
    from examples.taxi import story

    said: list[str] = []
    out = story.run(pg_db, moto_url, tmp_path / "work", said.append)

    booked, accepted, completed = out["rides"]
    assert booked["STATUS"] == "Booked" and booked["tripinfo"] == "2024-04-08T04:53:55Z,0780090"
    assert accepted["DRIVER_ID"] == 510909 and completed["STATUS"] == "Completed"
    trip = out["trip"]  # in PostgreSQL through the stream and the handler
    assert trip["id"] == 2000001 and trip["rider_email"] == "person71463@example.com"
    assert trip["total_amount"] == Decimal("133.15") and trip["fare_amount"] == Decimal("129.68")
    assert str(trip["dropoff_datetime"]) == "2024-04-08 04:58:20"
    billed = out["billing"]["output"]
    assert billed["driver_id"] == 510909 and billed["rides_total"] == 1
    assert Decimal(billed["billing_amount"]) == Decimal("133.15")
    assert billed["billing_status"] == "Processed"
    [row] = out["compared"]  # the one ride in both stores (not the earlier trips)
    assert row["riderid"] == "person71463@example.com"
    assert Decimal(str(row["DDB-Totalamount"])) == Decimal(str(row["RDB-Totalamount"]))
    assert Decimal(str(row["RDB-Totalamount"])) == Decimal("133.15")
    assert out["intact"] is True and said[-1] == "The ride arrived intact."
    assert [line[:2] for line in said if line[0].isdigit()] == [
        "1.", "2.", "3.", "4.", "5.", "6.", "7.",
    ]  # fmt: skip
