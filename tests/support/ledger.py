"""A ledger table of every canonical type for crash tests, and a write load on it.

The table has integers, an exact decimal, a double, a boolean, a date, timestamps with
and without a time zone, short and long text (long values are TOASTed on PostgreSQL),
bytes, JSON and a UUID, and the load writes NULLs, key changes, long values, updates
that leave the long value untouched (an unchanged TOAST value on PostgreSQL), deletes
and multi-statement transactions. :func:`add_column` and :func:`truncate` are the DDL a
crash test runs mid-way. Values are chosen to be representable on every target
(no NaN, no infinity, timestamps within MySQL's range), so the target must end equal
to the source, value for value.
"""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from opendms.endpoints.base import EndpointURL
from tests.support.crash import Writer
from tests.support.sql import connect, query

COLUMNS = (
    "id", "acct", "small", "amount", "ratio", "flag", "day", "at", "atz", "note", "code",
    "bin", "doc", "uid",
)  # fmt: skip

_PG = """CREATE TABLE ledger (
  id bigint PRIMARY KEY, acct int, small smallint, amount numeric(14,2),
  ratio double precision, flag boolean, day date, at timestamp(6), atz timestamptz,
  note text, code varchar(20), bin bytea, doc jsonb, uid uuid)"""
_MYSQL = """CREATE TABLE ledger (
  id bigint PRIMARY KEY, acct int, small smallint, amount decimal(14,2),
  ratio double, flag boolean, day date, at datetime(6), atz timestamp(6) NULL,
  note longtext, code varchar(20), bin varbinary(200), doc json, uid char(36))"""

EPOCH = datetime(2024, 1, 1)
LONG = 9000  # characters of a long note (TOASTed on PostgreSQL)


def _mysql(url: str) -> bool:
    return EndpointURL.parse(url).scheme in ("mysql", "mariadb")


def row(rng: random.Random, key: int, long_note: bool = False) -> tuple[Any, ...]:
    """One ledger row for ``key``; about one value in eight is NULL."""

    def maybe(value: Any) -> Any:
        return None if rng.random() < 0.12 else value

    when = EPOCH + timedelta(seconds=rng.randrange(0, 10**8), microseconds=rng.randrange(10**6))
    note = "".join(rng.choices("abcdefghij é€", k=LONG if long_note else rng.randrange(0, 40)))
    return (
        key,
        maybe(rng.randrange(-(2**31), 2**31)),
        maybe(rng.randrange(-(2**15), 2**15)),
        maybe(Decimal(rng.randrange(-(10**13), 10**13)) / 100),
        maybe(rng.uniform(-1e6, 1e6)),
        maybe(rng.random() < 0.5),
        maybe(date(2000, 1, 1) + timedelta(days=rng.randrange(15000))),
        maybe(when),
        maybe(when.replace(tzinfo=UTC) + timedelta(hours=rng.randrange(-12, 12))),
        maybe(note),
        maybe(f"c{rng.randrange(10**6)}"),
        maybe(rng.randbytes(rng.randrange(0, 60))),
        maybe(json.dumps({"k": key, "tags": ["a", rng.randrange(100)], "ok": rng.random() < 0.5})),
        maybe(str(uuid.UUID(int=rng.getrandbits(128)))),
    )


def _params(url: str, values: tuple[Any, ...]) -> tuple[Any, ...]:
    """Values as the source's driver takes them (MySQL: aware timestamps as UTC text)."""
    if not _mysql(url):
        return values
    out = list(values)
    atz = out[COLUMNS.index("atz")]
    if isinstance(atz, datetime):
        out[COLUMNS.index("atz")] = atz.astimezone(UTC).replace(tzinfo=None)
    return tuple(out)


def create(url: str, rows: int, seed: int = 1, identity_full: bool = False) -> None:
    """Create and fill ``ledger`` (ids 1..rows; every 50th row has a long note)."""
    rng = random.Random(seed)
    conn = connect(url)
    try:
        query(conn, _MYSQL if _mysql(url) else _PG)
        if identity_full and not _mysql(url):
            query(conn, "ALTER TABLE ledger REPLICA IDENTITY FULL")
        marks = ", ".join(["%s"] * len(COLUMNS))
        sql = f"INSERT INTO ledger ({', '.join(COLUMNS)}) VALUES ({marks})"
        cur = conn.cursor()
        try:
            for start in range(1, rows + 1, 1000):
                batch = [
                    _params(url, row(rng, k, k % 50 == 0))
                    for k in range(start, min(start + 1000, rows + 1))
                ]
                cur.executemany(sql, batch)
        finally:
            cur.close()
        if _mysql(url):
            conn.commit()
    finally:
        conn.close()


def add_column(url: str) -> None:
    """The mid-run DDL: a new nullable column (no default: existing rows stay NULL)."""
    conn = connect(url)
    try:
        query(conn, "ALTER TABLE ledger ADD COLUMN extra int")
    finally:
        conn.close()


def truncate(url: str) -> None:
    conn = connect(url)
    try:
        query(conn, "TRUNCATE ledger" if _mysql(url) else "TRUNCATE TABLE ledger")
    finally:
        conn.close()


class RichWriter(Writer):
    """The crash-test write load over the rich ledger: inserts (NULLs, long notes),
    updates of some columns (the long note left unchanged), key changes, deletes and
    two-statement transactions. Once ``extra`` exists (``with_extra``) updates set it."""

    with_extra = False

    def __init__(self, url: str, first_id: int, seed: int, rows: int) -> None:
        super().__init__(url, first_id, seed, rows=rows)
        self.first = first_id
        self.pause = 0.004

    def _key(self) -> int:
        """A key of the initial rows, or of one this load inserted (still there after a
        TRUNCATE)."""
        if self.next_id > self.first and self.rng.random() < 0.5:
            return self.rng.randrange(self.first, self.next_id)
        return self.rng.randrange(1, self.rows)

    def _one(self, conn: Any) -> None:
        pick, key = self.rng.random(), self._key()
        if pick < 0.35:
            self._insert(conn)
        elif pick < 0.65:
            values = row(self.rng, key)
            sql = "UPDATE ledger SET amount = %s, flag = %s, at = %s, code = %s"
            args: list[Any] = [values[3], values[5], values[7], values[10]]
            if self.with_extra:
                sql += ", extra = %s"
                args.append(self.rng.choice([None, self.rng.randrange(1000)]))
            query(conn, sql + " WHERE id = %s", (*args, key))
        elif pick < 0.75:
            new, self.next_id = self.next_id, self.next_id + 1  # a key change
            query(conn, "UPDATE ledger SET id = %s, doc = NULL WHERE id = %s", (new, key))
        elif pick < 0.85:
            query(conn, "DELETE FROM ledger WHERE id = %s", (key,))
        else:
            query(conn, "BEGIN")
            self._insert(conn)
            query(conn, "UPDATE ledger SET note = %s WHERE id = %s", ("x" * LONG, key))
            query(conn, "COMMIT")

    def _insert(self, conn: Any) -> None:
        new, self.next_id = self.next_id, self.next_id + 1
        values = _params(self.url, row(self.rng, new, self.rng.random() < 0.05))
        marks = ", ".join(["%s"] * len(COLUMNS))
        query(conn, f"INSERT INTO ledger ({', '.join(COLUMNS)}) VALUES ({marks})", values)
