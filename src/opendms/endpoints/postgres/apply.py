"""Applying captured changes to a PostgreSQL target, exactly once.

A batch of whole source transactions is applied in one target transaction
together with the task's checkpoint row (``opendms.checkpoints``), so after a
crash the target either has the batch and its position or neither.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import psycopg
import pyarrow as pa

from opendms.changes import UNCHANGED, ApplyPlan, Change, Op, Transaction
from opendms.endpoints.apply.policy import ApplyErrorPolicy, OnError, error_policies, op_name
from opendms.endpoints.base import EndpointURL
from opendms.endpoints.postgres.conn import connect, sqlstate, translate
from opendms.endpoints.postgres.netchanges import net_changes
from opendms.endpoints.postgres.stage import STAGE_MIN, ApplyPaths, MissingRowsError, staged
from opendms.endpoints.postgres.types import quote_ident, to_pg
from opendms.endpoints.pyvalues import iso_interval
from opendms.errors import ConnectError, DataError, TableError, TaskError
from opendms.model import Kind, Table

CHECKPOINTS = """
CREATE SCHEMA IF NOT EXISTS opendms;
CREATE TABLE IF NOT EXISTS opendms.checkpoints (
    task text PRIMARY KEY,
    position text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


# not-null and check violations: one record's data; undefined table/column, a type that
# does not match, no privilege: the table
_RECORD_STATES = frozenset({"23502", "23514"})
_TABLE_STATES = frozenset({"42P01", "42703", "42804", "42501", "42883"})
Skipped = tuple[str, Op, str, str]  # what OnError is told, once the batch committed
CHECKPOINT_SQL = (
    "INSERT INTO opendms.checkpoints (task, position, applied_at) VALUES (%s, %s, now()) "
    "ON CONFLICT (task) DO UPDATE SET position = excluded.position, applied_at = now()"
)


@dataclass(frozen=True)
class TableSql:
    """What statements on a table's target need: its quoted name, the SQL type of each
    column's text value, the key changes fold on (built from the table's ApplyPlan)."""

    target: Table
    names: dict[str, str]  # source column -> target column (copied columns only)
    casts: dict[str, str]  # target column -> SQL type for the text value
    fold_key: tuple[str, ...] = ()  # source primary key, when changes may be folded per row
    cache: dict[Any, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)
    converts: bool = False  # python values need adapting (intervals, arrays)

    @property
    def qualified(self) -> str:
        return f"{quote_ident(self.target.schema)}.{quote_ident(self.target.name)}"


def table_map(target: Table, names: dict[str, str], same_engine: bool) -> TableSql:
    casts = {
        c.name: "" if c.type.kind is Kind.ENUM and not same_engine else to_pg(c.type, same_engine)
        for c in target.columns
    }
    converts = any(c.type.kind in (Kind.INTERVAL, Kind.ARRAY) for c in target.columns)
    return TableSql(target, names, casts, _fold_key(target, names), converts=converts)


def _fold_key(target: Table, names: dict[str, str]) -> tuple[str, ...]:
    """The source key columns when per-row folding is safe (see netchanges)."""
    if not target.primary_key or any(i.unique for i in target.indexes):
        return ()
    source_of = {t: s for s, t in names.items()}
    if not all(k in source_of for k in target.primary_key):
        return ()
    return tuple(source_of[k] for k in target.primary_key)


def _param(tmap: TableSql, column: str) -> str:
    cast = tmap.casts[column]
    return f"%s::{cast}" if cast else "%s"  # no cast: the server infers (enum types)


def statement(tmap: TableSql, change: Change) -> tuple[str, list[Any]]:
    """SQL and parameters for one change (the SQL is built once per change shape)."""
    if change.op is Op.TRUNCATE:
        return f"TRUNCATE {tmap.qualified}", []
    sql, keep, keys = _shape(tmap, change)
    values, key = change.values, change.key
    return sql, [values[i] for i in keep] + [key[i] for i in keys]


def _shape(tmap: TableSql, change: Change) -> _Built:
    values = change.values
    unchanged = tuple(v is UNCHANGED for v in values) if UNCHANGED in values else ()
    shape = (change.op, change.columns, unchanged, change.key_columns, _nulls(change.key))
    built = tmap.cache.get(shape)
    if built is None:
        built = tmap.cache[shape] = _build(tmap, change, unchanged)
    return built


def _nulls(key: tuple[Any, ...]) -> tuple[bool, ...]:
    return tuple(v is None for v in key) if None in key else ()


_Built = tuple[str, list[int], list[int]]


def _build(tmap: TableSql, change: Change, unchanged: tuple[bool, ...]) -> _Built:
    """SQL of a change shape, the indexes of its values and of its key values."""
    keep = [
        i
        for i, c in enumerate(change.columns)
        if c in tmap.names and not (unchanged and unchanged[i])
    ]
    names = [tmap.names[change.columns[i]] for i in keep]
    if change.op is Op.INSERT:
        cols = ", ".join(quote_ident(n) for n in names)
        marks = ", ".join(_param(tmap, n) for n in names)
        return f"INSERT INTO {tmap.qualified} ({cols}) VALUES ({marks})", keep, []
    parts, keys = [], []
    for i, col in enumerate(change.key_columns):
        name = tmap.names.get(col)
        if name is None:
            continue
        if change.key[i] is None:
            parts.append(f"{quote_ident(name)} IS NULL")
        else:
            parts.append(f"{quote_ident(name)} = {_param(tmap, name)}")
            keys.append(i)
    where = " AND ".join(parts) or "false"
    if change.op is Op.DELETE:
        return f"DELETE FROM {tmap.qualified} WHERE {where}", [], keys
    sets = ", ".join(f"{quote_ident(n)} = {_param(tmap, n)}" for n in names)
    return f"UPDATE {tmap.qualified} SET {sets} WHERE {where}", keep, keys


def apply_batch(
    conn: Any,
    maps: dict[tuple[str, str], TableSql],
    batch: list[Transaction],
    checkpoint: tuple[str, str],
    paths: ApplyPaths | None = None,
    strict: frozenset[Op] = frozenset(),
) -> int:
    """Apply ``batch`` and record ``checkpoint`` (task, position) in one transaction;
    ``paths`` counts the runs that were staged and those run as statements. An update or
    delete (an op in ``strict``) that misses a target row raises MissingRowsError, so the
    batch is redone change by change and its apply-error policy sees the row."""
    keys = {t: m.fold_key for t, m in maps.items() if m.fold_key}
    changes = _folded(batch, keys)
    with conn.transaction(), conn.cursor() as cur:
        _apply_changes(conn, cur, maps, changes, ApplyPaths() if paths is None else paths, strict)
        cur.execute(CHECKPOINT_SQL, checkpoint)
    return sum(len(t.changes) for t in batch)  # source changes (folding may run fewer)


FOLD_TXN_LIMIT = 1000  # bigger transactions rarely touch a row twice: not worth folding


def _folded(batch: list[Transaction], keys: dict[tuple[str, str], tuple[str, ...]]) -> list[Change]:
    """The batch's changes, folded per row across runs of small transactions (order kept)."""
    out: list[Change] = []
    run: list[Change] = []
    for txn in batch:
        if len(txn.changes) > FOLD_TXN_LIMIT:
            out += net_changes(run, keys) + txn.changes
            run = []
        else:
            run += txn.changes
    return out + net_changes(run, keys)


class _Pipeline:
    """Pipeline mode (statements stream without a round trip each), left for COPY."""

    def __init__(self, conn: Any) -> None:
        self.conn: Any = conn
        self.pipe: Any = None

    def __enter__(self) -> _Pipeline:
        self.resume()
        return self

    def resume(self) -> None:
        if self.pipe is None:
            self.pipe = self.conn.pipeline()
            self.pipe.__enter__()

    def pause(self) -> None:
        pipe, self.pipe = self.pipe, None
        if pipe is not None:
            pipe.__exit__(None, None, None)

    def __exit__(self, *exc: Any) -> None:
        pipe, self.pipe = self.pipe, None
        if pipe is not None:
            pipe.__exit__(*exc)


def _apply_changes(
    conn: Any,
    cur: Any,
    maps: dict[tuple[str, str], TableSql],
    changes: list[Change],
    paths: ApplyPaths,
    strict: frozenset[Op] = frozenset(),
) -> None:
    """Consecutive changes of the same shape run as one executemany (pipelined), or
    by COPY when the run is long (see stage.py); ``paths`` counts which. A run whose op
    is in ``strict`` gets a cursor of its own, whose row count is checked once the
    pipeline has the results."""
    counted: list[tuple[Any, int]] = []
    with _Pipeline(conn) as pipeline:
        for tmap, (sql, keep, keys), run in _runs(maps, changes):
            if len(run) >= STAGE_MIN:
                pipeline.pause()
                if staged(cur, tmap, run, strict):
                    paths.staged_runs += 1
                    paths.staged_rows += len(run)
                    continue
                pipeline.resume()
            args = [[c.values[i] for i in keep] + [c.key[i] for i in keys] for c in run]
            runner = conn.cursor() if run[0].op in strict else cur
            runner.executemany(sql, args)
            if runner is not cur:
                counted.append((runner, len(run)))
            paths.statement_runs += 1
            paths.statement_rows += len(run)
    missing = [expected - runner.rowcount for runner, expected in counted]
    if any(n > 0 for n in missing):  # per run: a keyless run touching extra rows hides none
        raise MissingRowsError(f"{sum(n for n in missing if n > 0)} row(s) missing")


Run = tuple[TableSql, _Built, list[Change]]
_TRUNCATE: list[int] = []


def _runs(maps: dict[tuple[str, str], TableSql], changes: list[Change]) -> Iterator[Run]:
    """Consecutive changes with the same SQL: (map, built shape, changes)."""
    run: list[Change] = []
    built: _Built = ("", [], [])
    run_map = None
    for change in changes:
        tmap = maps.get((change.schema, change.table))
        if tmap is None:
            continue
        if change.op is Op.TRUNCATE:
            shape: _Built = (f"TRUNCATE {tmap.qualified}", _TRUNCATE, _TRUNCATE)
        else:
            shape = _shape(tmap, change)
        if (shape[0] != built[0] or tmap is not run_map) and run:
            assert run_map is not None
            yield run_map, built, run
            run = []
        built, run_map = shape, tmap
        run.append(change)
    if run:
        assert run_map is not None
        yield run_map, built, run


def read_checkpoint(conn: Any, task: str) -> str | None:
    conn.execute(CHECKPOINTS)
    row = conn.execute(
        "SELECT position FROM opendms.checkpoints WHERE task = %s", (task,)
    ).fetchone()
    return str(row[0]) if row else None


def write_checkpoint(conn: Any, task: str, position: str) -> None:
    with conn.transaction():
        conn.execute(CHECKPOINT_SQL, (task, position))


def _pg_param(value: Any) -> Any:
    """A canonical Python value as psycopg should send it (intervals as ISO text)."""
    if isinstance(value, pa.MonthDayNano):
        return iso_interval(value)
    if isinstance(value, list):
        return [_pg_param(v) for v in value]
    return value


def _python_params(change: Change) -> Change:
    if change.op is Op.DDL or change.op is Op.TRUNCATE:
        return change
    return replace(
        change,
        values=tuple(_pg_param(v) for v in change.values),
        key=tuple(_pg_param(v) for v in change.key),
    )


def upsert_statements(tmap: TableSql, change: Change) -> list[tuple[str, list[Any]]]:
    """Idempotent form of one change: the row may already be in the target.

    Insert -> insert or update by primary key (or insert when no identical row
    exists, for a table without one); update -> delete the old key, then the
    insert form of the full after-image; delete and truncate are already idempotent.
    """
    if change.op in (Op.DELETE, Op.TRUNCATE):
        return [statement(tmap, change)]
    out = []
    if change.op is Op.UPDATE:
        out.append(statement(tmap, replace(change, op=Op.DELETE)))
    sql, args = statement(tmap, replace(change, op=Op.INSERT, key_columns=(), key=()))
    pk = tmap.target.primary_key
    if pk:
        cols = [quote_ident(c.name) for c in tmap.target.columns if c.name not in pk]
        sets = ", ".join(f"{c} = excluded.{c}" for c in cols)
        conflict = ", ".join(quote_ident(c) for c in pk)
        action = f"DO UPDATE SET {sets}" if sets else "DO NOTHING"
        sql += f" ON CONFLICT ({conflict}) {action}"
    else:
        head, _, values = sql.partition(" VALUES (")
        names = head[head.index("(") + 1 : -1].split(", ")
        marks = values[:-1].split(", ")
        same = " AND ".join(
            f"t.{n} IS NOT DISTINCT FROM {m}" for n, m in zip(names, marks, strict=True)
        )
        sql = (
            f"{head} SELECT {values[:-1]} WHERE NOT EXISTS "
            f"(SELECT 1 FROM {tmap.qualified} t WHERE {same})"
        )
        args = args + args
    out.append((sql, args))
    return out


def ddl_statements(tmap: TableSql, change: Change, same_engine: bool) -> list[str]:
    """ALTER TABLE statements for a source column change (safe to run twice)."""
    out = []
    for cc in change.ddl:
        name = quote_ident(tmap.names.get(cc.column, cc.column))
        if cc.action == "add" and cc.ctype is not None:
            out.append(f"ADD COLUMN IF NOT EXISTS {name} {to_pg(cc.ctype, same_engine)}")
        elif cc.action == "drop":
            out.append(f"DROP COLUMN IF EXISTS {name}")
        elif cc.action == "alter_type" and cc.ctype is not None:
            pg = to_pg(cc.ctype, same_engine)
            out.append(f"ALTER COLUMN {name} TYPE {pg} USING {name}::{pg}")
    stmts = [f"ALTER TABLE {tmap.qualified} {part}" for part in out]
    for cc in change.ddl:
        if cc.action == "rename" and cc.new_name:
            stmts.append(_rename(tmap, tmap.names.get(cc.column, cc.column), cc.new_name))
    return stmts


def _rename(tmap: TableSql, old: str, new: str) -> str:
    """A rename that does nothing when it already happened (a retried batch)."""
    regclass = _literal(tmap.qualified)
    return (
        "DO $$BEGIN IF EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = "
        f"{regclass}::regclass AND attname = {_literal(old)} AND NOT attisdropped) THEN "
        f"ALTER TABLE {tmap.qualified} RENAME COLUMN {quote_ident(old)} TO {quote_ident(new)}; "
        "END IF; END$$"
    )


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class PgApplier:
    """Applies change batches to a PostgreSQL target (the Applier of this engine)."""

    def __init__(
        self,
        url: EndpointURL,
        task: str,
        plans: list[ApplyPlan],
        same_engine: bool,
        value_form: str = "pg-text",
        policies: dict[str, str] | None = None,
        on_error: OnError | None = None,
    ) -> None:
        self.task, self.same_engine, self.python = task, same_engine, value_form == "python"
        self.url = url
        self.paths = ApplyPaths()
        self.policies = error_policies(policies)
        # the ops whose missing rows a policy must see (IGNORE_RECORD skips them quietly)
        ops = {"update": Op.UPDATE, "delete": Op.DELETE}
        quiet = ApplyErrorPolicy.IGNORE_RECORD
        self.strict = frozenset(o for k, o in ops.items() if self.policies[k] is not quiet)
        self.on_error = on_error
        self.suspended: set[tuple[str, str]] = set()
        self.conn = connect(url, autocommit=True)
        self.plans = {(p.source.schema, p.source.name): p for p in plans}
        self.maps = {
            key: table_map(p.target, p.names, same_engine) for key, p in self.plans.items()
        }
        try:  # the checkpoint table exists before the first apply, whatever comes first
            self.conn.execute(CHECKPOINTS)
        except psycopg.Error as exc:
            self.conn.close()
            raise self._translated(exc) from exc

    def read_checkpoint(self) -> str | None:
        return read_checkpoint(self.conn, self.task)

    def write_checkpoint(self, position: str) -> None:
        write_checkpoint(self.conn, self.task, position)

    def apply(self, batch: list[Transaction], position: str, idempotent: bool) -> int:
        """Apply a batch with its checkpoint; a value the server refuses raises DataError, a
        missing table or column TableError, a lost connection ConnectError (retryable)."""
        began = time.perf_counter()
        try:
            return self._apply(batch, position, idempotent)
        except psycopg.Error as exc:
            raise self._translated(exc) from exc
        finally:
            self.paths.batches += 1
            self.paths.seconds += time.perf_counter() - began

    def apply_paths(self) -> dict[str, float]:
        """How the batches ran so far (see :class:`ApplyPaths`)."""
        return self.paths.metrics()

    def _translated(self, exc: psycopg.Error) -> Exception:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if self.conn.broken or self.conn.closed:  # whatever the error says, the link is gone
            where = f"{self.url.host}:{self.url.port or 5432}"
            return ConnectError(str(self.url), f"connection to {where} lost: {first}")
        if isinstance(exc, psycopg.DataError) or sqlstate(exc) in _RECORD_STATES:
            return DataError("", first)
        if sqlstate(exc) in _TABLE_STATES:
            return TableError("", first)
        return translate(exc, self.url)

    def _apply(self, batch: list[Transaction], position: str, idempotent: bool) -> int:
        if self.python and any(m.converts for m in self.maps.values()):
            batch = [replace(t, changes=[self._adapt(c) for c in t.changes]) for t in batch]
        simple = not idempotent and not self.suspended
        if simple and not any(c.op is Op.DDL for t in batch for c in t.changes):
            ran = ApplyPaths()  # counted once committed: a refused batch is redone below
            try:
                checkpoint = (self.task, position)
                applied = apply_batch(self.conn, self.maps, batch, checkpoint, ran, self.strict)
                self.paths.add(ran)
                return applied
            except (psycopg.errors.IntegrityError, MissingRowsError):
                self.paths.redone += 1  # a change conflicts: redo the batch one at a time
        skipped: list[Skipped] = []
        with self.conn.transaction(), self.conn.cursor() as cur:
            for txn in batch:
                for change in txn.changes:
                    self._careful(cur, change, idempotent, skipped)
            cur.execute(CHECKPOINT_SQL, (self.task, position))
        self.paths.one_by_one += sum(len(t.changes) for t in batch)
        for table, op, key, message in skipped:  # reported once the batch is committed
            if self.on_error is not None:
                self.on_error(table, op, key, message)
        return sum(len(t.changes) for t in batch)

    def _careful(self, cur: Any, change: Change, idempotent: bool, skipped: list[Skipped]) -> None:
        tmap = self.maps.get((change.schema, change.table))
        if tmap is None or (change.schema, change.table) in self.suspended:
            return
        if change.op is Op.DDL:
            for sql in ddl_statements(tmap, change, self.same_engine):
                cur.execute(sql)
            self._follow(change)
            return
        if idempotent:
            for sql, args in upsert_statements(tmap, change):
                cur.execute(sql, args)
            return
        problem = self._one(cur, tmap, change)
        if problem is not None:
            self._policy(cur, tmap, change, problem, skipped)

    def _one(self, cur: Any, tmap: TableSql, change: Change) -> str | None:
        """Run one change under a savepoint; what went wrong, or None."""
        sql, args = statement(tmap, change)
        try:
            with self.conn.transaction():
                cur.execute(sql, args)
        except psycopg.errors.IntegrityError as exc:
            return str(exc).splitlines()[0]
        if change.op in (Op.UPDATE, Op.DELETE) and cur.rowcount == 0:
            return "no such row on the target"
        return None

    def _policy(
        self,
        cur: Any,
        tmap: TableSql,
        change: Change,
        problem: str,
        skipped: list[Skipped],
    ) -> None:
        kind = op_name(change.op)
        policy = self.policies[kind]
        table = f"{change.schema}.{change.table}"
        key = ", ".join(f"{c}={v}" for c, v in zip(change.key_columns, change.key, strict=True))
        key = key or ", ".join(
            f"{c}={v}"
            for c, v in zip(change.columns, change.values, strict=True)
            if c in tmap.target.primary_key
        )
        if policy is ApplyErrorPolicy.STOP_TASK:
            raise TaskError(f"table {table}: {kind} of row ({key}) failed: {problem}")
        if policy is ApplyErrorPolicy.INSERT_RECORD and UNCHANGED not in change.values:
            for sql, args in upsert_statements(tmap, change):
                cur.execute(sql, args)
            return
        if policy is ApplyErrorPolicy.SUSPEND_TABLE:
            self.suspended.add((change.schema, change.table))
        if policy is not ApplyErrorPolicy.IGNORE_RECORD:
            skipped.append((table, change.op, key, f"{problem} ({policy})"))

    def _adapt(self, change: Change) -> Change:
        tmap = self.maps.get((change.schema, change.table))
        return _python_params(change) if tmap is not None and tmap.converts else change

    def _follow(self, change: Change) -> None:
        """The later changes of the batch see the table as the DDL left it."""
        key = (change.schema, change.table)
        plan = self.plans.get(key)
        if plan is None or not change.ddl:
            return
        for cc in change.ddl:
            plan = plan.after(cc)
        self.plans[key] = plan
        self.maps[key] = table_map(plan.target, plan.names, self.same_engine)

    def schema_changed(self, plan: ApplyPlan) -> None:
        key = (plan.source.schema, plan.source.name)
        self.plans[key] = plan
        self.maps[key] = table_map(plan.target, plan.names, self.same_engine)

    def table_dropped(self, schema: str, table: str) -> None:
        self.plans.pop((schema, table), None)
        self.maps.pop((schema, table), None)

    def batch_hint(self) -> tuple[float, int] | None:
        return None

    def must_flush_at(self) -> str | None:
        return None

    def close(self) -> None:
        self.conn.close()
