"""``validate_task``: compare every planned table of a task, source against target."""

from __future__ import annotations

import enum
import json
import logging
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from opendms.config import TaskSpec
from opendms.endpoints import engine_for, open_source
from opendms.endpoints.base import EndpointURL, Source
from opendms.endpoints.readback import TableRows
from opendms.engine.plan import plan_tables
from opendms.errors import ConfigError, NotComparableError, OpenDMSError
from opendms.mapping import TablePlan
from opendms.state import StateStore
from opendms.state import validation as vstate
from opendms.state.private import write_private
from opendms.validate.compare import Comparison, Failure, Outcome
from opendms.validate.sides import Side, database_side, find_table, rows_side, target_columns

log = logging.getLogger("opendms.validate")


class ValidationState(enum.StrEnum):
    """DMS table validation states."""

    VALIDATED = "Validated"
    MISMATCHED = "Mismatched records"
    NO_PRIMARY_KEY = "No primary key"  # no longer given: such tables compare as multisets
    TABLE_ERROR = "Table error"  # the target table is not the one the task makes
    ERROR = "Error"
    PENDING = "Pending records"


@dataclass(frozen=True)
class ValidationSettings:
    """DMS ``ValidationSettings`` (the part validation honours)."""

    FailureMaxCount: int = 10000
    TableFailureMaxCount: int = 1000
    # opendms: compute segment checksums in the databases and read only the differing
    # key ranges (see opendms.validate.bisect); off by default.
    InDatabaseChecksums: bool = False

    @classmethod
    def of(cls, spec: TaskSpec) -> ValidationSettings:
        """Read from ``task_settings.ValidationSettings`` when the task defines it."""
        section = getattr(spec.task_settings, "ValidationSettings", None)
        if isinstance(section, dict):
            get: Any = section.get
        else:
            get = lambda name, default: getattr(section, name, default)  # noqa: E731
        return cls(
            int(get("FailureMaxCount", cls.FailureMaxCount)),
            int(get("TableFailureMaxCount", cls.TableFailureMaxCount)),
            bool(get("InDatabaseChecksums", cls.InDatabaseChecksums)),
        )


@dataclass(frozen=True)
class TableValidation:
    schema: str
    name: str
    state: ValidationState
    source_rows: int = 0
    target_rows: int = 0
    mismatches: int = 0
    message: str = ""
    failures: tuple[Failure, ...] = ()

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name


@dataclass
class ValidationResult:
    task: str
    tables: list[TableValidation] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every table compared and found equal (a table not compared is no pass)."""
        return all(t.state is ValidationState.VALIDATED for t in self.tables)

    @property
    def not_validated(self) -> list[TableValidation]:
        """The tables that could not be compared (or were left once the failure
        budget ran out), each with the reason in its message."""
        compared = (ValidationState.VALIDATED, ValidationState.MISMATCHED)
        return [t for t in self.tables if t.state not in compared]

    @property
    def failures(self) -> list[Failure]:
        return [f for t in self.tables for f in t.failures]

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "ok": self.ok,
            "tables": [
                {
                    "table": t.qualified,
                    "state": t.state.value,
                    "source_rows": t.source_rows,
                    "target_rows": t.target_rows,
                    "mismatches": t.mismatches,
                    "message": t.message,
                }
                for t in self.tables
            ],
            "not_validated": [t.qualified for t in self.not_validated],
            "failures": [
                {"table": f.table, "key": f.key, "type": f.type, "details": f.details}
                for f in self.failures
            ],
        }


@dataclass(frozen=True)
class TargetReader:
    """How validation reads the target's tables back: opened as a source (with filter
    pushdown), or whole through its engine's :class:`TableRows` (a lake)."""

    url: EndpointURL
    source: Source | None = None
    rows: TableRows | None = None


def validate_task(
    spec: TaskSpec,
    store: StateStore,
    tables: list[str] | None = None,
    report: Path | None = None,
    checksums: bool | None = None,
) -> ValidationResult:
    """Validate the task's tables (all planned ones, or those named ``schema.table``);
    results go to the state store and, with ``report``, to a JSON file. ``checksums``
    overrides ``ValidationSettings.InDatabaseChecksums``."""
    settings = ValidationSettings.of(spec)
    if checksums is not None:
        settings = replace(settings, InDatabaseChecksums=checksums)
    vstate.ensure_tables(store)
    result = ValidationResult(spec.name)
    with ExitStack() as stack:
        source = _open(stack, spec.source.url, spec.source.settings)
        reader = _target_reader(stack, spec.target.url, spec.target.settings, spec.name)
        plans = _select(plan_tables(spec, source), tables)
        budget = settings.FailureMaxCount
        for plan in plans:
            if budget <= 0:
                table = _pending(plan)
            else:
                limit = min(settings.TableFailureMaxCount, budget)
                table = _validate_table(spec, plan, (source, reader), limit, settings)
                budget -= len(table.failures)
            _save(store, spec.name, table)
            result.tables.append(table)
    if report is not None:
        _write_report(report, result)
    return result


def _target_reader(stack: ExitStack, url: str, settings: dict[str, Any], task: str) -> TargetReader:
    parsed = EndpointURL.parse(url)
    engine = engine_for(parsed)
    if engine.capabilities.source and not engine.reads_back_whole:
        return TargetReader(parsed, source=_open(stack, url, settings))
    return TargetReader(parsed, rows=engine.table_rows(parsed, settings, task))


def _open(stack: ExitStack, url: str, settings: dict[str, Any]) -> Source:
    source = open_source(url, settings)
    stack.callback(source.close)
    return source


def _select(plans: list[TablePlan], names: list[str] | None) -> list[TablePlan]:
    if not names:
        return plans
    known = {p.source.qualified: p for p in plans} | {p.target.qualified: p for p in plans}
    unknown = [n for n in names if n not in known]
    if unknown:
        listed = ", ".join(sorted(p.source.qualified for p in plans)) or "none"
        raise ConfigError(f"table {unknown[0]} is not one of the task's tables ({listed})")
    chosen = {id(known[n]): known[n] for n in names}
    return [p for p in plans if id(p) in chosen]


def _pending(plan: TablePlan) -> TableValidation:
    src = plan.source
    reason = "not validated: the task reached ValidationSettings.FailureMaxCount"
    return TableValidation(src.schema, src.name, ValidationState.PENDING, message=reason)


def _columns(plan: TablePlan) -> list[tuple[str, str]]:
    """(source column, target column) of every copied (not computed) column."""
    return [(o.source, o.name) for o in plan.outputs if o.source is not None and not o.expression]


def _key(plan: TablePlan, pairs: list[tuple[str, str]]) -> tuple[int, ...]:
    """Positions in ``pairs`` of the target's primary key (empty: no usable key)."""
    target_names = [t for _, t in pairs]
    if not plan.target.primary_key or any(k not in target_names for k in plan.target.primary_key):
        return ()
    return tuple(target_names.index(k) for k in plan.target.primary_key)


def _validate_table(
    spec: TaskSpec,
    plan: TablePlan,
    ends: tuple[Source, TargetReader],
    limit: int,
    settings: ValidationSettings,
) -> TableValidation:
    src = plan.source
    source, reader = ends
    pairs = _columns(plan)
    key = _key(plan, pairs)  # none: the rows are compared as multisets
    try:
        left = database_side(source, src, tuple(s for s, _ in pairs), plan.filters)
        right = _target_side(plan, reader, tuple(t for _, t in pairs))
        checksums = settings.InDatabaseChecksums
        outcome = Comparison(src.qualified, left, right, key, limit, checksums).run()
    except OpenDMSError as exc:
        log.error("table %s: not validated: %s", src.qualified, exc)
        state = _error_state(exc)
        return TableValidation(src.schema, src.name, state, message=str(exc))
    return _table(plan, outcome)


def _error_state(exc: OpenDMSError) -> ValidationState:
    """``Table error`` when the table cannot be compared as it is, else ``Error``."""
    return (
        ValidationState.TABLE_ERROR
        if isinstance(exc, NotComparableError)
        else ValidationState.ERROR
    )


def _target_side(plan: TablePlan, reader: TargetReader, columns: tuple[str, ...]) -> Side:
    dst = plan.target
    if reader.source is None:
        if reader.rows is None:
            scheme = reader.url.scheme
            raise NotComparableError(dst.qualified, f"{scheme}:// targets cannot be read back")
        return rows_side(reader.rows, dst, columns)
    source = reader.source
    actual = find_table(source, dst.schema, dst.name)
    expected = tuple(c.name for c in dst.columns)
    return database_side(source, actual, target_columns(source.url, actual, columns, expected))


def _table(plan: TablePlan, outcome: Outcome) -> TableValidation:
    src = plan.source
    state = ValidationState.MISMATCHED if outcome.mismatches else ValidationState.VALIDATED
    return TableValidation(
        src.schema,
        src.name,
        state,
        outcome.source_rows,
        outcome.target_rows,
        outcome.mismatches,
        f"{outcome.mismatches} mismatched record(s)" if outcome.mismatches else "",
        tuple(outcome.failures),
    )


def _save(store: StateStore, task: str, table: TableValidation) -> None:
    vstate.clear_table(store, task, table.schema, table.name)
    row = vstate.ValidationStateRow(
        table.schema,
        table.name,
        table.state.value,
        table.source_rows,
        table.target_rows,
        table.mismatches,
        table.message,
        "",
    )
    vstate.save_state(store, task, row)
    failures = [vstate.FailureRow(f.table, f.key, f.type, f.details) for f in table.failures]
    vstate.add_failures(store, task, failures)


def _write_report(path: Path, result: ValidationResult) -> None:
    try:
        write_private(path, json.dumps(result.to_json(), indent=2, ensure_ascii=False) + "\n")
    except OSError as exc:
        raise ConfigError(f"cannot write the validation report {str(path)!r}: {exc}") from exc
