"""Finding the changes of a batch that the target refuses, without losing the others.

A batch is applied in one target transaction with its checkpoint. When that fails on one
record's data (:class:`DataError`) or on one table (:class:`TableError`), the batch is
applied again transaction by transaction, and a failing transaction is split in halves
until the failing changes are single: the error policies decide about each, the rest is
applied in order.

Exactly once still holds while a transaction is applied in parts: each part commits with
the checkpoint ``<position before the transaction> until <its end>``, so a crash in the
middle resumes before the transaction and replays it idempotently (inserts as upserts,
updates of missing rows as inserts, deletes of missing rows as nothing), which leaves
the target as one application would. The last part moves the checkpoint to the end.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

from opendms.changes import Applier, Change, Op, Position, Transaction
from opendms.engine.policies import ErrorPolicies
from opendms.errors import DataError, OpenDMSError, TableError

log = logging.getLogger("opendms.isolate")

# checkpoint text for: everything before ``prior`` applied, changes up to ``end`` may be
PartialText = Callable[[Position, Position], str]
# checkpoint text and idempotence for a batch ending at ``end``
FullText = Callable[[list[Transaction]], tuple[str, bool]]


class Isolating:
    """Applies batches through ``applier``; the error policies decide about failing ones."""

    def __init__(
        self, applier: Applier, policies: ErrorPolicies, full: FullText, partial: PartialText
    ) -> None:
        self.applier, self.policies = applier, policies
        self.full, self.partial = full, partial

    def apply(self, batch: list[Transaction], prior: Position) -> int:
        """Apply ``batch`` (the target holds everything up to ``prior``). Changes the
        source could not decode or convert (``error`` set) are decided in their place:
        what comes before them is applied first."""
        batch = self._kept(batch)
        if not any(c.error for t in batch for c in t.changes):
            text, idempotent = self.full(batch)
            try:
                return self.applier.apply(batch, text, idempotent)
            except (DataError, TableError) as exc:
                log.warning("a batch failed (%s); applying it in parts to find the change", exc)
        for txn in batch:
            self._one_transaction(self._kept([txn])[0], prior)
            prior = txn.end
        return sum(len(t.changes) for t in batch)

    def _kept(self, batch: list[Transaction]) -> list[Transaction]:
        """The batch without the changes of suspended tables."""
        if not self.policies.suspended:
            return batch
        keep = self.policies.keep
        return [replace(t, changes=[c for c in t.changes if keep(c)]) for t in batch]

    def _one_transaction(self, txn: Transaction, prior: Position) -> None:
        text, idempotent = self.full([txn])
        bad = [c for c in txn.changes if c.error]
        if bad:
            self._with_errors(txn, bad, self.partial(prior, txn.end), idempotent)
        else:
            try:
                self.applier.apply([txn], text, idempotent)
                return
            except (DataError, TableError) as exc:
                if self.policies.stops_at_once(exc):  # no part of the transaction applied
                    self.policies.stop_on(txn.changes, exc)
            self._halves(txn, txn.changes, self.partial(prior, txn.end), idempotent)
        self.applier.apply([replace(txn, changes=[])], text, idempotent)  # the checkpoint

    def _with_errors(self, txn: Transaction, bad: list[Change], text: str, idem: bool) -> None:
        """A transaction holding changes the source could not carry: the runs between
        them are applied in order, each bad change decided in its place."""
        first = self._source_error(bad[0])
        if self.policies.stops_at_once(first):  # no part of the transaction applied
            self.policies.data_error(bad[0], first, bad[0].error_column())
        run: list[Change] = []
        for change in txn.changes:
            if not change.error:
                run.append(change)
                continue
            self._halves(txn, run, text, idem)
            run = []
            if self.policies.keep(change):
                self.policies.data_error(change, self._source_error(change), change.error_column())
        self._halves(txn, run, text, idem)

    @staticmethod
    def _source_error(change: Change) -> DataError:
        return DataError(
            f"{change.schema}.{change.table}", change.error, column=change.error_column()
        )

    def _halves(self, txn: Transaction, changes: list[Change], text: str, idem: bool) -> None:
        changes = [c for c in changes if self.policies.keep(c) and not c.error]
        if not changes:
            return
        try:
            self.applier.apply([replace(txn, changes=changes)], text, idem)
            return
        except (DataError, TableError) as exc:
            if len(changes) == 1:
                self._decide(changes[0], exc)
                return
        middle = len(changes) // 2
        self._halves(txn, changes[:middle], text, idem)
        self._halves(txn, changes[middle:], text, idem)

    def _decide(self, change: Change, exc: OpenDMSError) -> None:
        if isinstance(exc, TableError) or change.op in (Op.DDL, Op.TRUNCATE):
            self.policies.table_error(change.schema, change.table, exc)
        else:
            self.policies.data_error(change, exc, getattr(exc, "column", ""))
