"""CDC apply to a ``nats://`` endpoint: a batch's records are published with their
record ids as ``Nats-Msg-Id``, their acks awaited, then the task's checkpoint is put in
the key-value bucket. A crash in between publishes the batch again on restart, and
JetStream drops the copies it already holds (within the stream's duplicate window)."""

from __future__ import annotations

from collections.abc import Iterator

from opendms.changes import ApplyPlan, Transaction
from opendms.endpoints.brokerrecords import RecordApplier
from opendms.endpoints.natsjs.client import token
from opendms.endpoints.natsjs.target import NatsTarget
from opendms.envelope import ChangeRecord


class NatsApplier(RecordApplier):
    """Publishes every change of a batch as a change record."""

    def __init__(self, target: NatsTarget, task: str, plans: list[ApplyPlan]) -> None:
        super().__init__(plans)
        self.target = target
        self.bucket = f"{target.names.stream()}_checkpoints"
        self.key = token(task)
        self.duplicates = 0

    def read_checkpoint(self) -> str | None:
        return self.target.conn.kv_get(self.bucket, self.key)

    def write_checkpoint(self, position: str) -> None:
        self.target.conn.kv_put(self.bucket, self.key, position)

    def apply(self, batch: list[Transaction], position: str, idempotent: bool) -> int:
        counted = [0]
        self.duplicates += self.target.publish(self._records(batch, counted), ids=True)
        self.write_checkpoint(position)
        return counted[0]

    def _records(self, batch: list[Transaction], counted: list[int]) -> Iterator[ChangeRecord]:
        """The records of ``batch`` transaction by transaction, so the loop publishes
        the first while the rest are made; ``counted``: how many."""
        for txn in batch:
            records = self.plans.records([txn])
            counted[0] += len(records)
            yield from records
