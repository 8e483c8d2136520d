"""CDC apply into MySQL/MariaDB and SQLite targets.

Target tables are created by the full-load target itself (``prepare``); every data check
reads the applied table back with plain SQL (:mod:`tests.oracles.rows`) and compares it
with the rows a Python model of the changes gives, each value in the form the README's
type mapping gives it on that target.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from opendms.changes import (
    UNCHANGED,
    ApplyPlan,
    Change,
    ColumnChange,
    Op,
    SeqPosition,
    Transaction,
)
from opendms.endpoints.apply.policy import error_policies
from opendms.endpoints.base import EndpointURL, PrepMode
from opendms.endpoints.mysql.apply import MySqlApplier
from opendms.endpoints.mysql.engine import ENGINE as MYSQL_ENGINE
from opendms.endpoints.sqlite.apply import SqliteApplier
from opendms.endpoints.sqlite.engine import ENGINE as SQLITE_ENGINE
from opendms.errors import ConfigError, DataError, TaskError
from opendms.model import Column, ColumnType, Index, Kind, T, Table, arrow_type
from tests.oracles.rows import interval as iso_interval
from tests.oracles.rows import mysql_connect, naive_utc, read_rows, time_of_day

SCHEMA = "src"
Row = dict[str, Any]
Applier = MySqlApplier | SqliteApplier

# -- tables ---------------------------------------------------------------------------

ITEM_TYPES: dict[str, ColumnType] = {
    "id": T(Kind.INT32),
    "i16": T(Kind.INT16),
    "i64": T(Kind.INT64),
    "dec": T(Kind.DECIMAL, precision=12, scale=4),
    "big": T(Kind.DECIMAL, precision=38, scale=10),
    "free": T(Kind.DECIMAL),
    "f32": T(Kind.FLOAT32),
    "f64": T(Kind.FLOAT64),
    "txt": T(Kind.STRING),
    "vc": T(Kind.STRING, length=20),
    "ch": T(Kind.STRING, length=5, fixed=True),
    "flag": T(Kind.BOOL),
    "d": T(Kind.DATE),
    "tm": T(Kind.TIME, precision=6),
    "ts": T(Kind.TIMESTAMP, precision=6),
    "tstz": T(Kind.TIMESTAMPTZ, precision=6),
    "bin": T(Kind.BINARY),
    "js": T(Kind.JSON),
    "u": T(Kind.UUID),
    "e": T(Kind.ENUM, labels=("sad", "ok", "happy")),
    "iv": T(Kind.INTERVAL),
    "arr": T(Kind.ARRAY, element=T(Kind.INT32)),
}


def table(name: str, types: dict[str, ColumnType], key: tuple[str, ...] = ("id",)) -> Table:
    cols = tuple(Column(n, t, nullable=n not in key) for n, t in types.items())
    return Table(SCHEMA, name, cols, primary_key=key)


ITEMS = table("items", ITEM_TYPES)
KV = Table(
    SCHEMA,
    "kv",
    (Column("k", T(Kind.STRING, length=50), False), Column("v", T(Kind.INT64), False)),
    primary_key=("k",),
)
NOPK = table(
    "nopk",
    {
        "a": T(Kind.INT32),
        "b": T(Kind.STRING, length=10),
        "c": T(Kind.DECIMAL, precision=10, scale=2),
        "d": T(Kind.TIMESTAMP, precision=6),
        "f": T(Kind.FLOAT64),
        "j": T(Kind.JSON),
        "g": T(Kind.FLOAT32),
        "tiny": T(Kind.DECIMAL, precision=38, scale=10),
        "t": T(Kind.TIME, precision=6),
        "dd": T(Kind.DATE),
        "tz": T(Kind.TIMESTAMPTZ, precision=6),
        "flag": T(Kind.BOOL),
        "bn": T(Kind.BINARY),
        "e": T(Kind.ENUM, labels=("p", "q")),
        "iv": T(Kind.INTERVAL),
        "arr": T(Kind.ARRAY, element=T(Kind.STRING)),
        "u": T(Kind.UUID),
    },
    key=(),
)


def canon(tbl: Table, row: Row) -> Row:
    """``row`` in canonical Python form (what the Arrow type of each column gives back)."""
    out = {}
    for c in tbl.columns:
        array: Any = pa.array([row.get(c.name)], arrow_type(c.type))
        out[c.name] = array.to_pylist()[0]
    return out


UTC = dt.UTC


def interval(months: int, days: int, nanos: int) -> Any:
    # The stubs declare a NamedTuple; at runtime MonthDayNano is built from one sequence.
    return pa.MonthDayNano([months, days, nanos])  # type: ignore[call-arg, arg-type]


def item(i: int, variant: int = 0) -> Row:
    """A row of ``items`` with values of every canonical type."""
    v = i * 7 + variant * 1000
    return canon(
        ITEMS,
        {
            "id": i,
            "i16": (v % 30000) - 15000,
            "i64": 9_000_000_000_000_000_000 + v if i % 3 == 0 else -v * 123_456_789,
            "dec": Decimal(f"{v}.{i % 10}5{variant}1"),
            "big": Decimal("0.0000000001")
            if i % 4 == 0
            else Decimal(f"1234567890123456789.{v:010d}"),
            "free": f"-{v}12345678901234567890.123456789012345678901234567890",  # text
            "f32": 3.4028234663852886e38 if i % 5 == 0 else 0.1 * v,
            "f64": 1 / (v + 3),
            "txt": f"row {v} héllo 𝄞 😀 \t tab\nnewline \\ backslash 'q\" \\N \x00 end",
            "vc": f"vc{v}"[:20],
            "ch": f"{v % 99999:05d}",
            "flag": v % 2 == 0,
            "d": dt.date(2024, 2, 29) + dt.timedelta(days=v),
            "tm": dt.time(12, 34, 56, (v * 1001) % 1_000_000),
            "ts": dt.datetime(2024, 1, 2, 3, 4, 5, v % 1_000_000),
            "tstz": dt.datetime(2023, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
            + dt.timedelta(seconds=v),
            "bin": bytes([0, 1, 255, 9, 10, 92, v % 256]) + b"\\N",
            "js": '{"a": [1, 2, {"b": null}], "u": "\U0001d11e", "v": ' + str(v) + "}",
            "u": f"a0eebc99-9c0b-4ef8-bb6d-{v:012d}",
            "e": ("sad", "ok", "happy")[v % 3],
            "iv": interval(14 + variant, 3, 14_706_700_000 + v * 1000),
            "arr": [1, None, v],
        },
    )


def null_item(i: int) -> Row:
    return canon(ITEMS, {"id": i})


# -- changes --------------------------------------------------------------------------


def ins(tbl: Table, row: Row) -> Change:
    return Change(Op.INSERT, SCHEMA, tbl.name, tuple(row), tuple(row.values()))


def upd(tbl: Table, key: Row, row: Row) -> Change:
    return Change(
        Op.UPDATE,
        SCHEMA,
        tbl.name,
        tuple(row),
        tuple(row.values()),
        tuple(key),
        tuple(key.values()),
    )


def delete(tbl: Table, key: Row) -> Change:
    return Change(Op.DELETE, SCHEMA, tbl.name, key_columns=tuple(key), key=tuple(key.values()))


def truncate(tbl: Table) -> Change:
    return Change(Op.TRUNCATE, SCHEMA, tbl.name)


def ddl(tbl: Table, *changes: ColumnChange) -> Change:
    return Change(Op.DDL, SCHEMA, tbl.name, ddl=changes)


def txn(n: int, *changes: Change) -> Transaction:
    return Transaction(n, dt.datetime(2024, 1, 1, tzinfo=UTC), SeqPosition(n), list(changes))


def plan(
    source: Table, target: Table | None = None, names: dict[str, str] | None = None
) -> ApplyPlan:
    target = target or source
    return ApplyPlan(source, target, names or {c.name: c.name for c in source.columns})


@dataclass
class Model:
    """The expected target state: rows per table by primary key, changes applied in order."""

    rows: dict[str, dict[tuple[Any, ...], Row]] = field(default_factory=dict)

    def apply(self, tbl: Table, change: Change) -> None:
        rows = self.rows.setdefault(tbl.name, {})
        key = tbl.primary_key
        if change.op is Op.INSERT:
            row = dict(zip(change.columns, change.values, strict=True))
            rows[tuple(row[k] for k in key)] = row
        elif change.op is Op.UPDATE:
            old = rows.pop(change.key)
            new = dict(zip(change.columns, change.values, strict=True))
            row = {c: (old[c] if new.get(c, UNCHANGED) is UNCHANGED else new[c]) for c in old}
            rows[tuple(row[k] for k in key)] = row
        elif change.op is Op.DELETE:
            rows.pop(change.key, None)

    def all(self, tbl: Table) -> list[Row]:
        return list(self.rows.get(tbl.name, {}).values())


# -- endpoints ------------------------------------------------------------------------


@dataclass
class Env:
    """One target engine: its full-load target object and a way to read tables back."""

    kind: str
    url: str
    target: Any
    path: Path | None = None

    def applier(self, *plans: ApplyPlan, task: str = "task1", **kwargs: Any) -> Applier:
        cls = MySqlApplier if self.kind == "mysql" else SqliteApplier
        return cls(self.target, task, list(plans), **kwargs)

    def create(self, tbl: Table) -> None:
        self.target.prepare(tbl, PrepMode.DROP_AND_CREATE)

    def load(self, tbl: Table, rows: list[Row]) -> None:
        """``rows`` loaded into ``tbl`` by the full-load writer (created first)."""
        self.create(tbl)
        if not rows:
            return
        arrays = [pa.array([r[c.name] for r in rows], arrow_type(c.type)) for c in tbl.columns]
        batch = pa.RecordBatch.from_arrays(arrays, names=[c.name for c in tbl.columns])
        assert not self.target.reject(tbl, batch)
        writer = self.target.writer(tbl, None)
        writer.write(batch)
        assert writer.close() == len(rows)

    def q(self, name: str) -> str:
        return f"`{name}`" if self.kind == "mysql" else f'"{name}"'

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        if self.kind == "mysql":
            conn = mysql_connect(self.url)
            try:
                with conn.cursor() as cur:
                    cur.execute(sql)
                    return list(cur.fetchall())
            finally:
                conn.close()
        assert self.path is not None
        with sqlite3.connect(self.path) as conn:
            return conn.execute(sql).fetchall()

    def rows(self, name: str, cols: str = "*", order: str = "") -> list[tuple[Any, ...]]:
        order = order or "1"
        return self.query(f"SELECT {cols} FROM {self.q(name)} ORDER BY {order}")

    def columns(self, name: str) -> list[str]:
        if self.kind == "mysql":
            found = self.query(
                "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = "
                f"DATABASE() AND TABLE_NAME = '{name}' ORDER BY ORDINAL_POSITION"
            )
            return [str(r[0]) for r in found]
        return [str(r[1]) for r in self.query(f"PRAGMA table_info({self.q(name)})")]

    def indexes(self, name: str) -> list[str]:
        if self.kind == "mysql":
            found = self.query(
                "SELECT DISTINCT INDEX_NAME FROM information_schema.STATISTICS WHERE "
                f"TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '{name}' AND INDEX_NAME <> 'PRIMARY'"
            )
        else:
            found = self.query(
                f"SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = '{name}' "
                "AND sql IS NOT NULL"
            )
        return sorted(str(r[0]) for r in found)

    def declared(self, name: str, column: str) -> str:
        if self.kind == "mysql":
            found = self.query(
                "SELECT DATA_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = "
                f"DATABASE() AND TABLE_NAME = '{name}' AND COLUMN_NAME = '{column}'"
            )
            return str(found[0][0])
        info = self.query(f"PRAGMA table_info({self.q(name)})")
        return next(str(r[2]) for r in info if r[1] == column)

    def holds(self, tbl: Table, rows: list[Row], order: tuple[str, ...] = ()) -> None:
        """The applied ``tbl``, read with plain SQL, holds exactly ``rows`` (model rows in
        canonical form), ordered by ``order`` (default: the primary key)."""
        order = order or tbl.primary_key
        got = [self.readable(tbl, r) for r in read_rows(self.url, tbl.name, order)]
        want = sorted((self.expected(tbl, r) for r in rows), key=lambda r: [r[c] for c in order])
        assert len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            assert g == w, [g[c] for c in order]

    def expected(self, tbl: Table, row: Row) -> Row:
        """A model row as this target holds it (README "Types")."""
        out = {c.name: _plain(c.type.kind, row.get(c.name)) for c in tbl.columns}
        for c in tbl.columns:
            if self.kind == "mysql" and c.type.kind is Kind.TIMESTAMPTZ:
                out[c.name] = naive_utc(out[c.name])  # into MySQL: a DATETIME(6) in UTC
        return out

    def readable(self, tbl: Table, row: Row) -> Row:
        """A row read back, with what the README says the target stores as text parsed."""
        if self.kind != "mysql":
            return row
        out = dict(row)
        for c in tbl.columns:
            value = out.get(c.name)
            if value is None:
                continue
            if c.type.kind is Kind.INTERVAL:  # into MySQL: ISO 8601 text (VARCHAR)
                out[c.name] = iso_interval(value)
            elif c.type.kind is Kind.TIME:  # a TIME column, read as an interval
                out[c.name] = time_of_day(value)
        return out


def _plain(kind: Kind, value: Any) -> Any:
    """A canonical (Arrow) model value as the oracle reads values: intervals as (months,
    days, microseconds), JSON parsed, decimals as Decimal."""
    if value is None:
        return None
    if kind is Kind.INTERVAL:
        return (value.months, value.days, value.nanoseconds // 1000)
    if kind is Kind.JSON:
        return json.loads(value)
    if kind is Kind.DECIMAL:
        return Decimal(str(value))
    return value


@pytest.fixture(params=["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Env]:
    target: Any
    if request.param == "mysql":
        url = str(request.getfixturevalue("mysql_target_db"))
        target = MYSQL_ENGINE.open_target(EndpointURL.parse(url), {})
        yield Env("mysql", url, target)
    else:
        path = tmp_path / "target.db"
        url = f"sqlite:///{path}"
        target = SQLITE_ENGINE.open_target(EndpointURL.parse(url), {})
        yield Env("sqlite", url, target, path)
    target.close()


class Errors(list[tuple[str, Op, str, str]]):
    def __call__(self, table: str, op: Op, key: str, message: str) -> None:
        self.append((table, op, key, message))


# -- inserts, updates, deletes ------------------------------------------------------------


def test_inserts_write_what_the_full_load_writes(env: Env) -> None:
    env.create(ITEMS)
    rows = [item(i) for i in range(1, 40)] + [null_item(40)]
    applier = env.applier(plan(ITEMS))
    assert applier.read_checkpoint() is None
    batch = [txn(1, *(ins(ITEMS, r) for r in rows[:5])), txn(2, *(ins(ITEMS, r) for r in rows[5:]))]
    assert applier.apply(batch, "2", idempotent=False) == len(rows)
    assert applier.read_checkpoint() == "2"
    env.holds(ITEMS, rows)
    text, blob = env.query(f"SELECT txt, bin FROM {env.q('items')} WHERE id = 1")[0]
    assert text == rows[0]["txt"]
    assert bytes(blob) == rows[0]["bin"]
    applier.close()


def test_updates_and_deletes_incl_key_change_and_unchanged_values(env: Env) -> None:
    env.create(ITEMS)
    model = Model()
    applier = env.applier(plan(ITEMS))
    first = [ins(ITEMS, item(i)) for i in range(1, 12)]
    partial = {**item(3, variant=1), "txt": UNCHANGED, "bin": UNCHANGED, "js": UNCHANGED}
    second = [
        upd(ITEMS, {"id": 1}, item(1, variant=1)),
        upd(ITEMS, {"id": 2}, {**item(2, variant=1), "id": 102}),
        upd(ITEMS, {"id": 3}, partial),
        delete(ITEMS, {"id": 4}),
        upd(ITEMS, {"id": 5}, null_item(5)),
        upd(ITEMS, {"id": 1}, item(1, variant=2)),  # the same row again in the batch
        upd(ITEMS, {"id": 102}, {**item(2, variant=2), "id": 2}),  # and its key back
        delete(ITEMS, {"id": 6}),
        ins(ITEMS, item(6, variant=3)),  # delete then insert of one key
    ]
    for change in first + second:
        model.apply(ITEMS, change)
    applier.apply([txn(1, *first)], "1", idempotent=False)
    applier.apply([txn(2, *second[:3]), txn(3, *second[3:])], "3", idempotent=False)
    assert applier.read_checkpoint() == "3"
    env.holds(ITEMS, model.all(ITEMS))
    kept = env.query(f"SELECT txt, vc FROM {env.q('items')} WHERE id = 3")[0]
    assert kept == (item(3)["txt"], item(3, variant=1)["vc"])  # UNCHANGED kept, the rest updated


def test_table_without_primary_key_matches_whole_rows_null_safe(env: Env) -> None:
    env.create(NOPK)
    ts = dt.datetime(2024, 5, 6, 7, 8, 9, 10)
    every = {
        "g": 0.1,
        "tiny": Decimal("1E-10"),
        "t": dt.time(23, 59, 59, 999999),
        "dd": dt.date(1000, 1, 1),
        "tz": dt.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC),
        "flag": False,
        "bn": b"\x00\xff'\\",
        "e": "q",
        "iv": interval(1, -2, 3_000),
        "arr": ["a", None, "b'c"],
        "u": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
    }
    same = canon(
        NOPK, {"a": 1, "b": "x", "c": Decimal("1.50"), "d": ts, "f": 0.1, "j": '{"k": 1}', **every}
    )
    nulls = canon(NOPK, {"a": 2})
    other = canon(
        NOPK,
        {"a": 3, "b": "y", "c": Decimal("0"), "d": ts, "f": 1e300, "j": "[]", "tiny": Decimal(0)},
    )
    applier = env.applier(plan(NOPK))
    applier.apply([txn(1, *(ins(NOPK, r) for r in (same, same, nulls, other)))], "1", False)
    changed = {**same, "b": "changed"}
    applier.apply(
        [
            txn(2, upd(NOPK, same, changed)),  # only one of the two identical rows
            txn(3, delete(NOPK, nulls), delete(NOPK, canon(NOPK, {"a": 99}))),
            txn(4, upd(NOPK, other, {**other, "f": 2.5}), upd(NOPK, same, {**same, "a": 4})),
        ],
        "4",
        idempotent=False,
    )
    expected = [changed, {**other, "f": 2.5}, {**same, "a": 4}]
    env.holds(NOPK, expected, order=("a", "b"))


def test_an_empty_batch_records_its_position(env: Env) -> None:
    applier = env.applier(plan(KV))
    assert applier.apply([], "7", idempotent=False) == 0
    assert applier.read_checkpoint() == "7"


def test_truncate_inside_the_transaction(env: Env) -> None:
    env.create(KV)
    applier = env.applier(plan(KV))
    applier.apply([txn(1, *(ins(KV, {"k": f"k{i}", "v": i}) for i in range(5)))], "1", False)
    applier.apply([txn(2, truncate(KV), ins(KV, {"k": "after", "v": 1}))], "2", False)
    env.holds(KV, [{"k": "after", "v": 1}])
    assert applier.read_checkpoint() == "2"


def test_many_transactions_over_two_tables(env: Env) -> None:
    env.create(ITEMS)
    env.create(KV)
    model = Model()
    changes: list[tuple[Table, Change]] = []
    for i in range(60):
        changes.append((KV, ins(KV, {"k": f"k{i}", "v": i})))
    for i in range(1, 30):
        changes.append((ITEMS, ins(ITEMS, item(i))))
    for n in range(5):  # the same keys updated again and again: segments must split
        for i in range(0, 60, 3):
            changes.append((KV, upd(KV, {"k": f"k{i}"}, {"k": f"k{i}", "v": i * 100 + n})))
        changes.append((ITEMS, upd(ITEMS, {"id": n + 1}, item(n + 1, variant=n))))
    changes.append((KV, ins(KV, {"k": "tmp", "v": 0})))
    changes.append((KV, delete(KV, {"k": "tmp"})))
    changes.append((KV, upd(KV, {"k": "k1"}, {"k": "k1-moved", "v": -1})))
    changes.append((KV, ins(KV, {"k": "k1", "v": 11})))
    for tbl, change in changes:
        model.apply(tbl, change)
    txns = [
        txn(i + 1, *(c for _, c in changes[i * 10 : i * 10 + 10]))
        for i in range(len(changes) // 10 + 1)
    ]
    applier = env.applier(plan(ITEMS), plan(KV))
    applier.apply(txns[:5], "5", idempotent=False)
    applier.apply(txns[5:], str(len(txns)), idempotent=False)
    env.holds(KV, model.all(KV))
    env.holds(ITEMS, model.all(ITEMS))


def test_a_thousand_changes_per_kind_in_one_batch(env: Env) -> None:
    env.create(KV)
    applier = env.applier(plan(KV))
    n = 1500
    inserts = [ins(KV, {"k": f"key-{i:05d}", "v": i}) for i in range(n)]
    updates = [upd(KV, {"k": f"key-{i:05d}"}, {"k": f"key-{i:05d}", "v": -i}) for i in range(n)]
    deletes = [delete(KV, {"k": f"key-{i:05d}"}) for i in range(0, n, 2)]
    started = time.monotonic()
    applier.apply([txn(1, *inserts), txn(2, *updates), txn(3, *deletes)], "3", idempotent=False)
    elapsed = time.monotonic() - started
    expected = [{"k": f"key-{i:05d}", "v": -i} for i in range(1, n, 2)]
    env.holds(KV, expected)
    assert elapsed < 60, f"{4 * n // 2} changes took {elapsed:.1f}s"


def test_changed_types_renamed_and_excluded_columns(env: Env) -> None:
    source = table(
        "conv",
        {
            "id": T(Kind.INT32),
            "n": T(Kind.INT32),
            "s": T(Kind.STRING, length=10),
            "secret": T(Kind.STRING),
            "m": T(Kind.DECIMAL, precision=8, scale=2),
        },
    )
    target = table(
        "conv",
        {
            "id": T(Kind.INT32),
            "num": T(Kind.INT64),
            "s": T(Kind.STRING, length=30),
            "m": T(Kind.DECIMAL, precision=12, scale=4),
        },
    )
    env.create(target)
    names = {"id": "id", "n": "num", "s": "s", "m": "m"}
    applier = env.applier(plan(source, target, names))
    rows: list[Row] = [
        {"id": 1, "n": 2**31 - 1, "s": "abc", "secret": "hidden", "m": Decimal("123456.78")},
        {"id": 2, "n": None, "s": None, "secret": None, "m": None},
    ]
    applier.apply([txn(1, *(ins(source, canon(source, r)) for r in rows))], "1", False)
    new = {"id": 2, "n": -5, "s": "x", "secret": "y", "m": Decimal("-1.5")}
    applier.apply([txn(2, upd(source, {"id": 2}, new))], "2", False)
    expected = [
        canon(target, {"id": 1, "num": 2**31 - 1, "s": "abc", "m": Decimal("123456.78")}),
        canon(target, {"id": 2, "num": -5, "s": "x", "m": Decimal("-1.5")}),
    ]
    env.holds(target, expected)


# -- DDL ----------------------------------------------------------------------------------

EVO = table(
    "evo",
    {"id": T(Kind.INT32), "a": T(Kind.STRING, length=10), "b": T(Kind.INT32), "c": T(Kind.STRING)},
)
EVO_AFTER = table(
    "evo",
    {
        "id": T(Kind.INT32),
        "a2": T(Kind.STRING, length=10),
        "b": T(Kind.INT64),
        "n": T(Kind.DECIMAL, precision=10, scale=2),
    },
)
ADD_N = ColumnChange("add", "n", T(Kind.DECIMAL, precision=10, scale=2))


def _evolution() -> list[Transaction]:
    def evo(**row: Any) -> Change:
        return ins(EVO, row)

    return [
        txn(1, evo(id=1, a="x", b=5, c="c1")),
        txn(2, ddl(EVO, ADD_N)),
        txn(3, evo(id=2, a="y", b=6, c="c2", n=Decimal("1.25"))),
        txn(4, ddl(EVO, ColumnChange("rename", "a", new_name="a2"))),
        txn(5, upd(EVO, {"id": 1}, {"id": 1, "a2": "z", "b": 5, "c": "c1", "n": None})),
        txn(6, ddl(EVO, ColumnChange("drop", "c"))),
        txn(7, ddl(EVO, ColumnChange("alter_type", "b", T(Kind.INT64)))),
        txn(8, ins(EVO, {"id": 3, "a2": "w", "b": 2**40, "n": Decimal("-0.5")})),
    ]


def test_ddl_add_rename_drop_and_alter_type(env: Env) -> None:
    env.create(EVO)
    env.target.finish(replace(EVO, indexes=(Index("by_b", ("b",)),)))
    applier = env.applier(plan(EVO))
    assert applier.apply(_evolution(), "8", idempotent=False) == 8
    assert applier.read_checkpoint() == "8"
    assert sorted(env.columns("evo")) == ["a2", "b", "id", "n"]
    expected = [
        {"id": 1, "a2": "z", "b": 5, "n": None},
        {"id": 2, "a2": "y", "b": 6, "n": Decimal("1.25")},
        {"id": 3, "a2": "w", "b": 2**40, "n": Decimal("-0.5")},
    ]
    env.holds(EVO_AFTER, [canon(EVO_AFTER, r) for r in expected])
    assert env.declared("evo", "b") == ("bigint" if env.kind == "mysql" else "BIGINT")
    assert env.indexes("evo") == ["evo_by_b"]  # kept through SQLite's table rebuild
    # DDL applied again (a crash after a DDL, before its checkpoint) skips what is done.
    again = env.applier(plan(EVO))
    for t in _evolution():
        if t.changes[0].op is Op.DDL:
            again.apply([t], str(t.end), idempotent=False)
    assert sorted(env.columns("evo")) == ["a2", "b", "id", "n"]
    env.holds(EVO_AFTER, [canon(EVO_AFTER, r) for r in expected])


def test_failure_after_ddl_keeps_what_committed(env: Env) -> None:
    """MySQL commits DDL implicitly: the data before it and the DDL stay, with the
    checkpoint at the DDL; SQLite applies the whole batch or nothing."""
    env.create(EVO)
    applier = env.applier(plan(EVO))
    bad = ins(EVO, {"id": 1, "a": "dup", "b": 1, "c": "c", "n": None})  # a duplicate key
    batch = [
        txn(1, ins(EVO, {"id": 1, "a": "x", "b": 5, "c": "c1"})),
        txn(2, ddl(EVO, ADD_N)),
        txn(3, bad),
    ]
    with pytest.raises(TaskError, match=r"evo.*id=1"):
        env.applier(plan(EVO), policies={"insert": "STOP_TASK"}).apply(batch, "3", False)
    if env.kind == "mysql":
        assert "n" in env.columns("evo")
        assert env.rows("evo", "id") == [(1,)]
        assert applier.read_checkpoint() == "2"
    else:
        assert "n" not in env.columns("evo")
        assert env.rows("evo", "id") == []
        assert applier.read_checkpoint() is None


# -- idempotent mode, atomicity -------------------------------------------------------


def test_idempotent_mode_over_rows_already_loaded(env: Env) -> None:
    """The full load ran without a shared snapshot and already saw these changes."""
    model = Model()
    initial = [ins(ITEMS, item(i)) for i in range(1, 8)]
    partial = {**item(5, variant=4), "txt": UNCHANGED, "bin": UNCHANGED}
    changes = [
        ins(ITEMS, item(20)),
        upd(ITEMS, {"id": 20}, {**item(20, variant=1), "id": 21}),
        upd(ITEMS, {"id": 3}, item(3, variant=1)),
        delete(ITEMS, {"id": 2}),
        upd(ITEMS, {"id": 4}, {**item(4, variant=2), "id": 40}),
        upd(ITEMS, {"id": 5}, partial),
        upd(ITEMS, {"id": 6}, item(6, variant=5)),
        ins(ITEMS, item(30)),
        delete(ITEMS, {"id": 30}),
    ]
    for change in initial + changes:
        model.apply(ITEMS, change)
    env.load(ITEMS, model.all(ITEMS))  # the full load saw the final state
    applier = env.applier(plan(ITEMS))
    batch = [txn(1, *changes[:4]), txn(2, *changes[4:])]
    applier.apply(batch, "2", idempotent=True)
    env.holds(ITEMS, model.all(ITEMS))
    applier.apply(batch, "2", idempotent=True)  # replayed again: still the same
    env.holds(ITEMS, model.all(ITEMS))
    # A partial update of a missing row inserts what it carries.
    applier.apply(
        [txn(3, upd(ITEMS, {"id": 50}, {"id": 50, "vc": "only", "txt": UNCHANGED}))], "3", True
    )
    assert env.query(f"SELECT vc, txt FROM {env.q('items')} WHERE id = 50") == [("only", None)]


def test_failed_batch_leaves_neither_data_nor_checkpoint(env: Env) -> None:
    env.create(KV)
    applier = env.applier(plan(KV))
    applier.apply([txn(1, ins(KV, {"k": "a", "v": 1}))], "1", idempotent=False)
    batch = [
        txn(2, ins(KV, {"k": "b", "v": 2}), upd(KV, {"k": "a"}, {"k": "a", "v": 10})),
        txn(3, upd(KV, {"k": "a"}, {"k": "a", "v": None})),  # NOT NULL column
    ]
    with pytest.raises(DataError, match=r"src\.kv.*k='a'"):
        applier.apply(batch, "3", idempotent=False)
    assert env.rows("kv") == [("a", 1)]
    assert applier.read_checkpoint() == "1"
    # NaN cannot be stored by either target: refused before anything is sent.
    floats = table("floats", {"id": T(Kind.INT32), "f": T(Kind.FLOAT64)})
    env.create(floats)
    other = env.applier(plan(floats), task="task2")
    with pytest.raises(DataError, match=r"floats.*column f.*id=2"):
        other.apply(
            [txn(1, ins(floats, {"id": 1, "f": 1.0}), ins(floats, {"id": 2, "f": float("nan")}))],
            "1",
            False,
        )
    assert env.rows("floats") == []
    assert other.read_checkpoint() is None
    # The applier goes on after a failed batch.
    applier.apply(batch[:1], "2", idempotent=False)
    assert env.rows("kv") == [("a", 10), ("b", 2)]
    assert applier.read_checkpoint() == "2"


def test_checkpoint_read_and_write(env: Env) -> None:
    applier = env.applier(task="one")
    assert applier.read_checkpoint() is None
    applier.write_checkpoint("mysql-bin.000003:1234@0-1-42")
    applier.write_checkpoint("mysql-bin.000003:5678@0-1-43")
    assert env.applier(task="one").read_checkpoint() == "mysql-bin.000003:5678@0-1-43"
    assert env.applier(task="two").read_checkpoint() is None


# -- error policies ---------------------------------------------------------------------


def _kv_conflicts() -> list[Transaction]:
    return [
        txn(
            2,
            ins(KV, {"k": "new", "v": 1}),
            ins(KV, {"k": "a", "v": 100}),  # duplicate key
            upd(KV, {"k": "missing"}, {"k": "missing", "v": 7}),  # no such row
            delete(KV, {"k": "gone"}),  # no such row
            upd(KV, {"k": "b"}, {"k": "b", "v": 20}),
        )
    ]


def _kv_start(env: Env, **kwargs: Any) -> Applier:
    env.create(KV)
    applier = env.applier(plan(KV), **kwargs)
    applier.apply([txn(1, ins(KV, {"k": "a", "v": 1}), ins(KV, {"k": "b", "v": 2}))], "1", False)
    return applier


def test_default_policies_log_insert_and_update_errors_ignore_deletes(env: Env) -> None:
    errors = Errors()
    applier = _kv_start(env, on_error=errors)
    applier.apply(_kv_conflicts(), "2", idempotent=False)
    assert env.rows("kv") == [("a", 1), ("b", 20), ("new", 1)]
    assert applier.read_checkpoint() == "2"
    assert [(t, op, key) for t, op, key, _ in errors] == [
        ("src.kv", Op.INSERT, "k='a'"),
        ("src.kv", Op.UPDATE, "k='missing'"),
    ]
    assert "Duplicate" in errors[0][3] or "UNIQUE" in errors[0][3]
    assert errors[1][3] == "no target row matches the key"


def test_insert_record_policy_upserts(env: Env) -> None:
    errors = Errors()
    policies = {"insert": "INSERT_RECORD", "update": "INSERT_RECORD", "delete": "LOG_ERROR"}
    applier = _kv_start(env, policies=policies, on_error=errors)
    applier.apply(_kv_conflicts(), "2", idempotent=False)
    assert env.rows("kv") == [("a", 100), ("b", 20), ("missing", 7), ("new", 1)]
    assert [(op, key) for _, op, key, _ in errors] == [(Op.DELETE, "k='gone'")]


def test_stop_task_policy_raises_and_applies_nothing(env: Env) -> None:
    applier = _kv_start(env, policies={"update": "STOP_TASK"})
    with pytest.raises(TaskError, match=r"table src\.kv: update of row k='missing' failed"):
        applier.apply(_kv_conflicts(), "2", idempotent=False)
    assert env.rows("kv") == [("a", 1), ("b", 2)]
    assert applier.read_checkpoint() == "1"


def test_suspend_table_policy_skips_the_table_from_the_failing_change_on(env: Env) -> None:
    errors = Errors()
    applier = _kv_start(env, policies={"insert": "SUSPEND_TABLE"}, on_error=errors)
    env.create(NOPK)
    applier.schema_changed(plan(NOPK))
    batch = [
        txn(
            2,
            ins(KV, {"k": "c", "v": 3}),
            ins(KV, {"k": "a", "v": 100}),
            ins(KV, {"k": "d", "v": 4}),
        ),
        txn(3, ins(NOPK, canon(NOPK, {"a": 1})), upd(KV, {"k": "b"}, {"k": "b", "v": 20})),
    ]
    applier.apply(batch, "3", idempotent=False)
    assert env.rows("kv") == [("a", 1), ("b", 2), ("c", 3)]
    assert env.rows("nopk", "a") == [(1,)]
    assert len(errors) == 1
    assert errors[0][:3] == ("src.kv", Op.INSERT, "k='a'")
    assert "suspended" in errors[0][3]
    assert applier.suspended == {"src.kv"}
    applier.apply([txn(4, ins(KV, {"k": "e", "v": 5}))], "4", idempotent=False)
    assert env.rows("kv", "k") == [("a",), ("b",), ("c",)]
    assert applier.read_checkpoint() == "4"


def test_policy_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="INSERT_RECORD"):
        error_policies({"delete": "INSERT_RECORD"})
    with pytest.raises(ConfigError, match="unknown"):
        error_policies({"upsert": "LOG_ERROR"})
    with pytest.raises(ConfigError, match="not one of"):
        error_policies({"insert": "RETRY"})
    assert error_policies({"insert": "insert_record"})["insert"] == "INSERT_RECORD"
