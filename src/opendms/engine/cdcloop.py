"""The change-data-capture loop: stream source transactions, apply them in batches.

Each batch is whole source transactions, applied in one target transaction
together with the checkpoint; only then is the source told the position is
flushed. A crash at any point therefore neither loses nor repeats a change:
on restart the stream resumes at the checkpoint and anything at or before it
is skipped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from opendms.changes import Op, Position, Transaction
from opendms.errors import TaskError
from opendms.state import StateStore

log = logging.getLogger("opendms.cdc")
PHASE_FULL_LOAD = "full load"
PHASE_CACHED = "applying cached changes"
PHASE_LIVE = "ongoing replication"

Apply = Callable[[list[Transaction], str], int]


@dataclass(frozen=True)
class BatchSettings:
    """DMS BatchApply settings (seconds and changes)."""

    timeout_min: float = 1.0
    timeout_max: float = 30.0
    max_changes: int = 10_000
    max_bytes: int = 0  # > 0: also end a batch at about this many bytes of values
    flush_when_idle: bool = True  # False: only size and time end a batch (lake files)


def _size(txn: Transaction) -> int:
    """Rough bytes of a transaction's values (for size-rolled lake files)."""
    total = 0
    for change in txn.changes:
        for value in change.values:
            total += len(value) if isinstance(value, str | bytes) else 8
    return total


class StopEvent(threading.Event):
    """A stop request. ``streaming`` is set once changes are being applied: from then
    on a stop is graceful (flush, checkpoint, return) rather than an interruption."""

    streaming = False


class CdcLoop:
    """Consumes a transaction stream and applies it exactly once."""

    def __init__(
        self,
        task: str,
        apply: Apply,
        confirm: Callable[[Position], None],
        store: StateStore,
        settings: BatchSettings | None = None,
    ) -> None:
        self.task = task
        self.apply = apply
        self.confirm = confirm
        self.store = store
        self.settings = settings or BatchSettings()
        self.applied: Position | None = None
        self.batch: list[Transaction] = []
        self.started = 0.0
        self.changes = 0
        self.bytes = 0
        self.flush_at: Position | None = None  # end a batch exactly here (lake retry)
        self.stop_at: Callable[[Transaction], bool] | None = None  # CdcStopPosition
        self.stop_reached = False
        self.stop_when_live = False  # FullLoadSettings.StopTaskCachedChangesApplied
        # why a transaction fails the task ('' = it does not), after what came before it
        # is applied
        self.refuse: Callable[[Transaction], str] | None = None
        self.stopped_live = False
        self.before_ddl: Callable[[Transaction], None] | None = None
        self.on_ddl: Callable[[Transaction], None] | None = None
        self.heartbeat: Callable[[], None] | None = None  # idle, nothing pending
        self.lag_bytes: Callable[[], int] | None = None
        self.apply_paths: Callable[[], dict[str, float]] | None = None  # applier counters
        self.live = False  # past the changes cached while the full load ran
        self.cached_end: Position | None = None  # end of what was cached when caught up
        self.received_at: datetime | None = None  # commit time of the newest received txn
        self.took_at: datetime | None = None  # when the newest txn of the batch arrived
        self.metrics_at = 0.0

    def run(
        self,
        stream: Iterable[Transaction | None],
        start: Position,
        stop: threading.Event,
        caught_up: Callable[[], bool],
        follow: bool = True,
    ) -> Position:
        """Apply until ``stop`` is set, or (without ``follow``) until ``caught_up()``:
        the stream has delivered everything committed when streaming began."""
        self.applied = start
        self.store.set_phase(self.task, PHASE_CACHED)
        if isinstance(stop, StopEvent):
            stop.streaming = True
        for item in stream:
            if item is not None and item.end > start:
                self._take(item)
            reached = caught_up()
            done = stop.is_set() or self.stop_reached or (reached and not follow)
            if self.batch and self.flush_at is None and (done or self._due(item is None)):
                self._flush()
            self._observe(reached, item is None)
            if self.live and self.stop_when_live:
                self.stopped_live = True  # the cached changes are applied: stop here
                break
            if done:
                break
        return self.applied

    def _take(self, txn: Transaction) -> None:
        """Add a transaction; DDL goes in a batch of its own (the target's columns change)."""
        if self.stop_at is not None and self.stop_at(txn):
            self.stop_reached = True
            return
        reason = self.refuse(txn) if self.refuse is not None else ""
        if reason:
            if self.batch:
                self._flush()
            raise TaskError(reason)
        ddl = any(c.op is Op.DDL for c in txn.changes)
        if ddl and self.batch:
            self._flush()
        if ddl and self.before_ddl is not None:
            self.before_ddl(txn)
        self._add(txn)
        if ddl or (self.flush_at is not None and txn.end >= self.flush_at):
            self.flush_at = None
            self._flush()
            if ddl and self.on_ddl is not None:
                self.on_ddl(txn)

    def _observe(self, reached: bool, idle: bool) -> None:
        """Phase change once what was cached when the stream caught up is applied (a
        batch still filling with newer changes does not hold the phase back); metrics at
        most once a second."""
        if reached and not self.live:
            if self.cached_end is None:
                self.cached_end = self.batch[-1].end if self.batch else self.applied
            if self.applied is not None and self.applied >= self.cached_end:
                self.live = True
                self.store.set_phase(self.task, PHASE_LIVE)
        if idle and not self.batch:
            self.received_at = None
            if self.heartbeat is not None:
                self.heartbeat()
        if time.monotonic() - self.metrics_at >= 1.0:
            self._metrics(0.0)

    def _metrics(self, throughput: float) -> None:
        self.metrics_at = time.monotonic()
        lag = 0.0
        if self.received_at is not None:
            lag = max((datetime.now(UTC) - self.received_at).total_seconds(), 0.0)
        self.store.set_metrics(
            self.task,
            {
                "incoming_changes": float(self.changes),
                "source_latency_s": round(lag, 3),
                "target_latency_s": round(lag, 3) if self.batch else 0.0,
                "throughput_rows_s": round(throughput, 1),
                "source_lag_bytes": float(self.lag_bytes()) if self.lag_bytes else 0.0,
                **(self.apply_paths() if self.apply_paths else {}),
            },
        )

    def _add(self, txn: Transaction) -> None:
        if not self.batch:
            self.started = time.monotonic()
        self.batch.append(txn)
        self.changes += len(txn.changes)
        if self.settings.max_bytes:
            self.bytes += _size(txn)
        self.received_at = txn.commit_time
        self.took_at = datetime.now(UTC)

    def _due(self, idle: bool) -> bool:
        return (idle and self.settings.flush_when_idle) or self._full()

    def _full(self) -> bool:
        waited = time.monotonic() - self.started
        big = bool(self.settings.max_bytes) and self.bytes >= self.settings.max_bytes
        many = self.changes >= self.settings.max_changes
        return big or many or waited >= self.settings.timeout_min

    def _flush(self) -> None:
        batch, end = self.batch, self.batch[-1].end
        began = time.monotonic()
        paths = self.apply_paths() if self.apply_paths else {}
        applied = self.apply(batch, str(end))
        self.confirm(end)
        self.applied = end
        self.store.set_position(self.task, str(end))
        self._record(batch)
        if log.isEnabledFor(logging.INFO):
            log.info("applied %d changes up to %s%s", applied, end, self._how(batch, began, paths))
        self.batch, self.changes, self.bytes = [], 0, 0
        took = max(time.monotonic() - min(self.started, began), 1e-6)
        self._metrics(applied / took)

    def _how(self, batch: list[Transaction], began: float, before: dict[str, float]) -> str:
        """How a batch went: its apply time, how long after the source commit of its last
        transaction it arrived and was applied, and the applier's paths it took."""
        commit, now = batch[-1].commit_time, datetime.now(UTC)
        text = f" in {len(batch)} transactions: apply {time.monotonic() - began:.2f} s"
        if self.took_at is not None:
            received = (self.took_at - commit).total_seconds()
            done = (now - commit).total_seconds()
            text += f", received {received:.2f} s and applied {done:.2f} s after commit"
        if self.apply_paths is not None:
            after = self.apply_paths()
            ran = {k.removeprefix("apply_"): v - before.get(k, 0.0) for k, v in after.items()}
            ran.pop("seconds", None)
            text += "; paths " + " ".join(f"{k}={v:g}" for k, v in ran.items() if v)
        return text

    def _record(self, batch: list[Transaction]) -> None:
        counts: Counter[tuple[str, str, str]] = Counter()
        for txn in batch:
            for change in txn.changes:
                stat = change.op.value if change.stat is None else change.stat
                if stat:
                    counts[(change.schema, change.table, stat)] += 1
        for (schema, table, op), n in counts.items():
            self.store.count_change(self.task, schema, table, op, n)
