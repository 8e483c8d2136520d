"""Compare one table's two sides: checksums, digests, then values of the rows that differ.

With ``checksums`` (and when both sides are PostgreSQL or MySQL/MariaDB, the key is one
integer column and every column has an engine-neutral SQL text form), checksums computed
in the databases bisect the key space first (:mod:`opendms.validate.bisect`) and only
the key ranges that differ are read; otherwise the whole table is. Reading is usually
faster when the databases are near (formatting and hashing every row in SQL costs more
CPU than streaming it); checksums move far fewer bytes over a slow link.

Pass 1 reads each side (both at once) and keeps, per row, the canonical key text and a 64-bit
hash of the canonical row text (computed in DuckDB, vectorised). The two digests are
counted per key and joined on it: a key on one side only is MISSING_TARGET /
MISSING_SOURCE, a key held more times on one side (a duplicate on a target without
the key's constraint) is MISSING_TARGET / MISSING_SOURCE with both counts, a key
whose hashes differ is a RECORD_DIFF candidate. Pass 2 (only when something differs)
reads both sides again and keeps the canonical values of just those keys, to report
which columns differ and how.

A table without a usable key (``key`` empty) is compared as a multiset of whole rows:
the "key" of a row is the MD5 of its whole canonical text, so each distinct row is
counted on both sides and a row held a different number of times is one failure
(its values as key, both counts in the details).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from opendms.model import Filter, FilterGroup, Kind
from opendms.validate.bisect import Bisection, bisect, checksummers, range_filters
from opendms.validate.normalize import canonical_text, common_decimal, key_value, row_text
from opendms.validate.sides import Side

RECORD_DIFF = "RECORD_DIFF"
MISSING_TARGET = "MISSING_TARGET"
MISSING_SOURCE = "MISSING_SOURCE"

Values = list[str | None]
LOOKUP_KEYS = 500  # keys per read when fetching the rows that differ
PLAIN_KEYS = (Kind.INT16, Kind.INT32, Kind.INT64, Kind.STRING)


@dataclass(frozen=True)
class Failure:
    """One row that does not validate."""

    table: str
    key: dict[str, Any]
    type: str
    details: dict[str, Any]


@dataclass
class Outcome:
    """What comparing one table found."""

    source_rows: int = 0
    target_rows: int = 0
    mismatches: int = 0
    failures: list[Failure] = field(default_factory=list)


class Comparison:
    """Compares ``source`` and ``target`` (aligned columns); ``names`` are the source
    column names used in reports, ``key`` the positions of the key columns."""

    def __init__(
        self,
        table: str,
        source: Side,
        target: Side,
        key: tuple[int, ...],
        limit: int,
        checksums: bool = False,
    ) -> None:
        self.table = table
        self.checksums = checksums
        self.source = source
        self.target = target
        self.key = key
        self.limit = limit
        self.hints = source.types()
        self.names = source.columns
        pairs = zip(self.hints, target.types(), strict=True)
        self.common = [common_decimal(a, b) for a, b in pairs]
        self.con = duckdb.connect()
        self.counts: dict[str, tuple[int, int]] = {}  # key -> (source, target) rows

    def run(self) -> Outcome:
        """Compare; with checksum bisection when asked and both sides can compute them."""
        try:
            found = None
            if self.checksums:
                found = checksummers(self.source, self.target, self.key, self.hints, self.common)
            if found is None:
                return self._rows()
            return self._bisected(bisect(*found))
        finally:
            self.con.close()

    def _bisected(self, result: Bisection) -> Outcome:
        """Row-level comparison of just the key ranges whose checksums differ."""
        if not result.ranges:
            return Outcome(result.source_rows, result.target_rows)
        if result.rows * 2 < max(result.source_rows, result.target_rows):
            self.source, self.target = (
                side.restricted(range_filters(side.columns[self.key[0]], result.ranges))
                for side in (self.source, self.target)
            )
        out = self._rows()
        out.source_rows, out.target_rows = result.source_rows, result.target_rows
        return out

    def _rows(self) -> Outcome:
        """Read both sides (concurrently) into digests and compare them."""
        with ThreadPoolExecutor(2, "validate") as pool:
            left = pool.submit(self._digest, self.source, "s")
            right = pool.submit(self._digest, self.target, "t")
            (src, n_src), (dst, n_dst) = left.result(), right.result()
        out = Outcome(n_src, n_dst)
        self.con.register("s", src)
        self.con.register("t", dst)
        out.mismatches, found = self._differences()
        if found:
            out.failures = self._failures(found)
        return out

    # -- pass 1: digests ------------------------------------------------------

    def _texts(self, side: Side, batch: pa.RecordBatch, only: tuple[int, ...] = ()) -> list[Any]:
        picks = only or tuple(range(len(side.columns)))
        types = side.types()
        return [
            canonical_text(batch.column(side.columns[i]), types[i], self.hints[i], self.common[i])
            for i in picks
        ]

    def _digest(self, side: Side, name: str) -> tuple[pa.Table, int]:
        """(key text, hash of the row's canonical texts) of every row of ``side``."""
        parts: list[pa.Table] = []
        rows = 0
        cursor = self.con.cursor()
        columns = ", ".join(f"c{i}" for i in range(len(side.columns)))
        query = f"SELECT {self._key_sql()} AS k, hash({columns}) AS h FROM b_{name}"
        try:
            for batch in side.batches(()):
                if not batch.num_rows:
                    continue
                texts = self._texts(side, batch)
                chunk = {f"c{i}": t for i, t in enumerate(texts)}
                chunk["k"] = row_text([texts[i] for i in self.key] if self.key else texts)
                cursor.register(f"b_{name}", pa.table(chunk))
                parts.append(cursor.sql(query).to_arrow_table())
                cursor.unregister(f"b_{name}")
                rows += batch.num_rows
        finally:
            cursor.close()
        empty = pa.table({"k": pa.array([], pa.string()), "h": pa.array([], pa.uint64())})
        return (pa.concat_tables(parts) if parts else empty), rows

    def _key_sql(self) -> str:
        """A row's key from the chunk's ``k`` (the key text, or the whole row's text)."""
        return "k" if self.key else "md5(k)"

    def _differences(self) -> tuple[int, list[tuple[str, str]]]:
        """(how many keys differ, the first ``limit`` of them with their failure type)."""
        per_key = "SELECT k, count(*) AS n, min(h) AS h, max(h) AS h2 FROM {} GROUP BY k"
        join = (
            f"FROM ({per_key.format('s')}) s FULL OUTER JOIN ({per_key.format('t')}) t "
            "ON s.k = t.k WHERE s.n IS DISTINCT FROM t.n OR s.h IS DISTINCT FROM t.h "
            "OR s.h2 IS DISTINCT FROM t.h2"
        )
        counted = self.con.execute(f"SELECT count(*) {join}").fetchone()
        total = int(counted[0]) if counted else 0
        if not total or self.limit <= 0:
            return total, []
        kind = (
            f"CASE WHEN coalesce(s.n, 0) > coalesce(t.n, 0) THEN '{MISSING_TARGET}' "
            f"WHEN coalesce(s.n, 0) < coalesce(t.n, 0) THEN '{MISSING_SOURCE}' "
            f"ELSE '{RECORD_DIFF}' END"
        )
        rows = self.con.execute(
            f"SELECT coalesce(s.k, t.k) AS k, {kind}, coalesce(s.n, 0), coalesce(t.n, 0) "
            f"{join} ORDER BY 1 LIMIT {int(self.limit)}"
        ).fetchall()
        self.counts = {str(r[0]): (int(r[2]), int(r[3])) for r in rows}
        return total, [(str(r[0]), str(r[1])) for r in rows]

    # -- pass 2: the values of the rows that differ ------------------------------

    def _collect(self, side: Side, wanted: pa.Array[Any]) -> dict[str, Values]:
        out: dict[str, Values] = {}
        for batch in self._lookup(side, wanted):
            if not batch.num_rows:
                continue
            keys = self._keys(side, batch)
            mask = pc.is_in(keys, value_set=wanted)
            if not pc.any(mask).as_py():
                continue
            texts = self._texts(side, batch.filter(mask))
            for i, key in enumerate(keys.filter(mask).to_pylist()):
                out[str(key)] = [t[i].as_py() for t in texts]
        return out

    def _keys(self, side: Side, batch: pa.RecordBatch) -> pa.Array[Any]:
        """The keys of ``batch``'s rows, as pass 1 computed them."""
        text = row_text(self._texts(side, batch, self.key))
        if self.key:
            return text
        self.con.register("texts", pa.table({"k": text}))
        try:
            keys = self.con.sql(f"SELECT {self._key_sql()} FROM texts").to_arrow_table()
        finally:
            self.con.unregister("texts")
        combined: pa.Array[Any] = keys.column(0).combine_chunks()
        return combined

    def _lookup(self, side: Side, wanted: pa.Array[Any]) -> Iterator[pa.RecordBatch]:
        """The batches holding the ``wanted`` keys: read by key (``key = v1 OR key = v2
        ...``) when the side pushes filters down and the key is one integer or text
        column, else the whole side again."""
        if not (side.pushdown and len(self.key) == 1 and self._plain_key()):
            yield from side.batches(())
            return
        column = side.columns[self.key[0]]
        values = [str(v) for v in wanted.to_pylist()]
        for start in range(0, len(values), LOOKUP_KEYS):
            conditions = tuple(
                Filter(column, "eq", (v,)) for v in values[start : start + LOOKUP_KEYS]
            )
            yield from side.batches((FilterGroup(column, conditions),))

    def _plain_key(self) -> bool:
        ctype = self.hints[self.key[0]]
        return ctype.kind in PLAIN_KEYS and not ctype.fixed

    def _failures(self, found: list[tuple[str, str]]) -> list[Failure]:
        wanted = pa.array([k for k, _ in found], pa.string())
        src = self._collect(self.source, wanted)
        dst = self._collect(self.target, wanted)
        out = []
        for key, kind in found:
            failure = self._failure((key, kind), src.get(key), dst.get(key))
            if failure is not None:
                out.append(failure)
        return out

    def _failure(
        self, found: tuple[str, str], src: Values | None, dst: Values | None
    ) -> Failure | None:
        key_text, kind = found
        values = src if src is not None else dst
        if values is None:
            return None  # changed between the passes
        key = {
            self.names[i]: key_value(values[i], self.hints[i])
            for i in (self.key or range(len(values)))
        }
        if kind == RECORD_DIFF and src is not None and dst is not None:
            diff = {
                name: {"source": s, "target": t}
                for name, s, t in zip(self.names, src, dst, strict=True)
                if s != t
            }
            return Failure(self.table, key, kind, diff) if diff else None
        side, row = ("source", src) if kind == MISSING_TARGET else ("target", dst)
        details: dict[str, Any] = {side: dict(zip(self.names, row or values, strict=True))}
        counts = self.counts.get(key_text, (0, 0))
        if max(counts) > 1 or min(counts) > 0 or not self.key:
            details |= {"source_rows": counts[0], "target_rows": counts[1]}
        return Failure(self.table, key, kind, details)


def key_positions(columns: tuple[str, ...], key: tuple[str, ...]) -> tuple[int, ...]:
    return tuple(columns.index(k) for k in key)
