"""CDC apply to a ``redis://`` endpoint: a batch's XADDs and the task's checkpoint key
go in one MULTI/EXEC transaction, so a crash leaves both or neither (no duplicate, no
gap: the restarted task resumes after the checkpoint written with the last batch)."""

from __future__ import annotations

from opendms.changes import ApplyPlan, Transaction
from opendms.endpoints.brokerrecords import RecordApplier
from opendms.endpoints.redisstreams.engine import guarded
from opendms.endpoints.redisstreams.target import RedisTarget


class RedisApplier(RecordApplier):
    """Appends every change of a batch as a change record."""

    def __init__(self, target: RedisTarget, task: str, plans: list[ApplyPlan]) -> None:
        super().__init__(plans)
        self.target = target
        self.key = target.settings.checkpoint(task)

    def read_checkpoint(self) -> str | None:
        value = guarded(self.target.url, lambda: self.target.client.get(self.key))
        return None if value is None else bytes(value).decode("utf-8")

    def write_checkpoint(self, position: str) -> None:
        guarded(self.target.url, lambda: self.target.client.set(self.key, position))

    def apply(self, batch: list[Transaction], position: str, idempotent: bool) -> int:
        records = self.plans.records(batch)
        self.target.send(records, {self.key: position})
        return len(records)
