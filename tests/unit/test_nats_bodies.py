"""The NATS engine's cheap bodies and ids are the broker records' own, byte for byte."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from opendms.endpoints.brokerrecords import MessageFormat, encode
from opendms.endpoints.natsjs.bodies import RecordIds, body
from opendms.envelope import ChangeRecord, record_id

STAMP = "2024-05-01T00:00:00.000000Z"


@pytest.mark.parametrize(
    "after",
    [
        {"id": 1, "v": 'héllo "q" \\ \n', "n": 1.5, "b": True, "z": None, "big": 2**63},
        {"id": 2, "n": float("nan"), "inf": float("-inf")},
        {"id": 3, "d": Decimal("1.10"), "raw": b"\x00", "t": [1, 2]},
        None,
    ],
    ids=["plain", "non-finite", "tagged", "delete"],
)
@pytest.mark.parametrize("fmt", list(MessageFormat))
def test_a_body_is_the_broker_records_encoding(after: dict[str, Any] | None, fmt: Any) -> None:
    key = {"id": 9}
    record = ChangeRecord("U" if after else "D", "s", "t", STAMP, "1", "7", 2, key=key,
                          before={"id": 9, "old": 1.0}, after=after)  # fmt: skip
    assert body(record, fmt) == encode(record, fmt)


def test_record_ids_are_the_envelopes() -> None:
    ids = RecordIds()
    positions = ["0/16B3748", "0/16B3748", "mysql-bin.000003:1234@0-1-42", "1714577400000006"]
    for i, position in enumerate(positions):
        record = ChangeRecord("I", "s", "t", STAMP, position, "7", i)
        assert ids(record) == record_id(record)
