"""``GET /metrics``: the tasks' statistics in the Prometheus text format.

:class:`TaskCollector` reads the state store on each scrape (nothing is kept between
scrapes, and each app has its own registry). Labels are ``task`` and, per table,
``table`` (``schema.table``); endpoint URLs are never exported. Names follow the DMS
CloudWatch metrics where there is one (CDCLatencySource, CDCLatencyTarget,
CDCIncomingChanges, FullLoadThroughputRowsSource)::

    opendms_task_status{task,status}                     1 for the task's status, else 0
    opendms_task_full_load_rows_total{task}              rows loaded by the full load
    opendms_task_full_load_rows_per_second{task}         full-load rows / elapsed seconds
    opendms_task_cdc_incoming_changes{task}              changes received, not yet applied
    opendms_task_cdc_latency_source_seconds{task}        CDCLatencySource
    opendms_task_cdc_latency_target_seconds{task}        CDCLatencyTarget
    opendms_task_cdc_throughput_rows_per_second{task}    rows applied per second
    opendms_task_source_backlog_bytes{task}              WAL / binlog retained (when known)
    opendms_task_data_errors_total{task}                 rows the error policies recorded
    opendms_task_validation_tables{task,state}           tables per validation state
    opendms_task_validation_failures_total{task}         rows validation found different
    opendms_table_full_load_rows_total{task,table}       and inserts, updates, deletes,
    opendms_table_{inserts,updates,deletes,ddls}_total    ddls applied by CDC; error rows
    opendms_table_error_rows_total{task,table}
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import anyio
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response

from opendms.state import StateStore, TableStats, TaskRecord, TaskStatus
from opendms.state import validation as vstate

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
TASK = ["task"]
TABLE = ["task", "table"]
# record.metrics keys (engine/cdcloop.py) -> (metric name, help)
CDC_GAUGES = {
    "incoming_changes": (
        "opendms_task_cdc_incoming_changes",
        "CDC changes received and not yet applied (DMS CDCIncomingChanges)",
    ),
    "source_latency_s": (
        "opendms_task_cdc_latency_source_seconds",
        "Seconds between the last change's commit on the source and now (CDCLatencySource)",
    ),
    "target_latency_s": (
        "opendms_task_cdc_latency_target_seconds",
        "Seconds between the commit on the source and the apply on the target (CDCLatencyTarget)",
    ),
    "throughput_rows_s": (
        "opendms_task_cdc_throughput_rows_per_second",
        "CDC rows applied per second",
    ),
}
TABLE_COUNTERS = (
    ("full_load_rows", "opendms_table_full_load_rows", "Rows loaded by the full load"),
    ("inserts", "opendms_table_inserts", "Inserts applied by CDC"),
    ("updates", "opendms_table_updates", "Updates applied by CDC"),
    ("deletes", "opendms_table_deletes", "Deletes applied by CDC"),
    ("ddls", "opendms_table_ddls", "DDL statements applied by CDC (TRUNCATE included)"),
    ("error_rows", "opendms_table_error_rows", "Rows the data error policies skipped or logged"),
)


class TaskCollector(Collector):
    """The metrics of the tasks in the state store at ``state`` (read when collected)."""

    def __init__(self, state: Path) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:
        if not self.state.exists():
            return iter(())
        store = StateStore(self.state)
        try:
            return iter(list(self._families(store)))
        finally:
            store.close()

    def _families(self, store: StateStore) -> Iterator[Metric]:
        records = store.tasks()
        tables = {r.name: store.tables(r.name) for r in records}
        yield _status(records)
        yield from _full_load(records, tables)
        yield from _cdc(records)
        yield _data_errors(store, records)
        yield from _validation(store, records)
        yield from _tables(tables)


def _status(records: list[TaskRecord]) -> Metric:
    family = GaugeMetricFamily(
        "opendms_task_status",
        "The task's status (1 for the current one)",
        labels=["task", "status"],
    )
    for r in records:
        for status in TaskStatus:
            family.add_metric([r.name, status.value], 1.0 if r.status is status else 0.0)
    return family


def _full_load(records: list[TaskRecord], tables: dict[str, list[TableStats]]) -> Iterator[Metric]:
    rows = CounterMetricFamily(
        "opendms_task_full_load_rows", "Rows loaded by the task's full load", labels=TASK
    )
    rate = GaugeMetricFamily(
        "opendms_task_full_load_rows_per_second",
        "Full-load rows per second, from the first table's start to the last one's end",
        labels=TASK,
    )
    for r in records:
        stats = tables[r.name]
        total = sum(t.full_load_rows for t in stats)
        rows.add_metric([r.name], float(total))
        rate.add_metric([r.name], _rows_per_second(stats, total))
    yield rows
    yield rate


def _rows_per_second(stats: list[TableStats], total: int) -> float:
    starts = [_time(t.started_at) for t in stats if t.started_at]
    if not starts or not total:
        return 0.0
    ends = [_time(t.ended_at) if t.ended_at else datetime.now(UTC) for t in stats if t.started_at]
    seconds = (max(ends) - min(starts)).total_seconds()
    return round(total / seconds, 3) if seconds > 0 else 0.0


def _time(text: str | None) -> datetime:
    moment = datetime.fromisoformat(text or "")
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _cdc(records: list[TaskRecord]) -> Iterator[Metric]:
    for key, (name, text) in CDC_GAUGES.items():
        family = GaugeMetricFamily(name, text, labels=TASK)
        for r in records:
            if key in r.metrics:
                family.add_metric([r.name], float(r.metrics[key]))
        yield family
    backlog = GaugeMetricFamily(
        "opendms_task_source_backlog_bytes",
        "Bytes the source retains for the task (replication slot WAL, binlog), when known",
        labels=TASK,
    )
    for r in records:
        if r.metrics.get("source_lag_bytes"):
            backlog.add_metric([r.name], float(r.metrics["source_lag_bytes"]))
    yield backlog


def _data_errors(store: StateStore, records: list[TaskRecord]) -> Metric:
    family = CounterMetricFamily(
        "opendms_task_data_errors", "Rows the data error policies recorded", labels=TASK
    )
    for r in records:
        family.add_metric([r.name], float(len(store.data_errors(r.name))))
    return family


def _validation(store: StateStore, records: list[TaskRecord]) -> Iterator[Metric]:
    tables = GaugeMetricFamily(
        "opendms_task_validation_tables",
        "Tables per validation state (Validated, Mismatched records, Pending records, ...)",
        labels=["task", "state"],
    )
    failures = CounterMetricFamily(
        "opendms_task_validation_failures",
        "Rows validation found missing or different on the target",
        labels=TASK,
    )
    for r in records:
        try:
            states = vstate.states(store, r.name)
            failed = len(vstate.failures(store, r.name))
        except sqlite3.OperationalError:  # no validation ever ran in this state file
            continue
        counts: dict[str, int] = {}
        for row in states:
            counts[row.state] = counts.get(row.state, 0) + 1
        for state, count in sorted(counts.items()):
            tables.add_metric([r.name, state], float(count))
        failures.add_metric([r.name], float(failed))
    yield tables
    yield failures


def _tables(tables: dict[str, list[TableStats]]) -> Iterator[Metric]:
    for attr, name, text in TABLE_COUNTERS:
        family = CounterMetricFamily(name, text, labels=TABLE)
        for task, stats in tables.items():
            for t in stats:
                label = f"{t.schema}.{t.name}" if t.schema else t.name
                family.add_metric([task, label], float(getattr(t, attr)))
        yield family


def registry_of(state: Path) -> CollectorRegistry:
    """A registry of its own (no process-wide state) with the tasks of ``state``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TaskCollector(state))
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    """The registry's metrics in the Prometheus text format."""
    return generate_latest(registry)


def metrics_endpoint(state: Path) -> Callable[[Request], Awaitable[Response]]:
    """The ``GET /metrics`` handler for the tasks of the state store at ``state``."""
    registry = registry_of(state)

    async def metrics(request: Request) -> Response:
        body = await anyio.to_thread.run_sync(exposition, registry)
        return Response(body, media_type=CONTENT_TYPE)

    return metrics
