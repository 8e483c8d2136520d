"""Loading a table again after a recoverable error in the full load.

A unit (a table or a segment) whose connection drops marks its table for reloading
(``FullLoad._want_reload``); once the pass is over, :class:`Reloads` waits out the
RecoverableError* back-off and loads each such table again as a whole (emptied first),
while the other tables keep what they loaded.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from opendms.endpoints.base import PrepMode
from opendms.engine.recover import Retries
from opendms.engine.units import LoadUnit
from opendms.errors import ConnectError, OpenDMSError

if TYPE_CHECKING:
    from opendms.engine.fullload import FullLoad, TableRun

log = logging.getLogger("opendms.fullload")


class Reloads:
    """Loads again the tables whose units hit a recoverable error (a lost connection, a
    server restart), each as a whole, after the RecoverableError* back-off; the other
    tables keep what they loaded. When the source connection was lost under a snapshot
    exported by a CDC slot, that snapshot is gone: the error goes up so the task starts
    over with a new slot (the load and the change stream must share one snapshot)."""

    def __init__(self, load: FullLoad, units: list[LoadUnit], exported: bool) -> None:
        self.load, self.units, self.exported = load, units, exported

    def run(self, snap: str | None) -> None:
        while not self.load.stop.is_set():
            runs = [r for r in self.load.runs.values() if r.reload is not None and not r.failure]
            if not runs or not self._wait(runs):
                return
            alive = self._snapshot_alive(snap)
            if alive is None:
                continue  # the source is not back yet: wait again
            for run in runs:
                self._reset(run)
            names = {r.plan.source.qualified for r in runs}
            again = [u for u in self.units if u.name in names]
            if alive:
                self.load._run_units(again, snap)
                continue
            with self.load.source.snapshot() as fresh:  # the source restarted
                self.load._run_units(again, fresh)

    def _snapshot_alive(self, snap: str | None) -> bool | None:
        """True: read again under ``snap``; False: under a new snapshot; None: the source
        cannot be reached yet. A snapshot exported by a CDC slot that is gone raises (the
        task starts over: the load and the change stream must share one snapshot)."""
        if snap is None:
            return True
        try:
            alive = self.load.source.snapshot_alive(snap)
        except OpenDMSError as exc:
            if exc.retryable:
                return None
            raise
        if not alive and self.exported:
            raise ConnectError(
                str(self.load.source.url),
                "the snapshot the replication slot exported is gone (the source restarted?); "
                "the full load starts over with a new slot",
            )
        return alive

    def _wait(self, runs: list[TableRun]) -> bool:
        """Back off; tables whose retries are over fail with their last error."""
        longest = 0.0
        for run in runs:
            run.retries = run.retries or Retries(self.load.settings.ErrorBehavior)
            wait = run.retries.next_wait()
            if wait is None:
                error, run.reload = run.reload, None
                self.load._fail_table(run, f"{error} (recoverable-error retries are over)")
            else:
                longest = max(longest, wait)
        if all(r.failure for r in runs):
            return False
        return not self.load.stop.wait(longest)

    def _reset(self, run: TableRun) -> None:
        load, src = self.load, run.plan.source
        if run.failure:
            return
        run.reload, run.rows, run.errors, run.started = None, 0, 0, False
        run.pending = sum(1 for u in self.units if u.name == src.qualified)
        log.info("table %s: loading it again", src.qualified)
        try:
            load.target.prepare(run.plan.target, PrepMode.TRUNCATE_BEFORE_LOAD)
        except OpenDMSError as exc:
            if not exc.retryable:
                load._fail_table(run, str(exc))
                return
            run.reload = str(exc)  # the target is not back yet: wait again
