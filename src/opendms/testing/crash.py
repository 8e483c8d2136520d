"""Helpers for crash tests and soak runs: a bounded write load and a table comparison."""

from __future__ import annotations

import random
import threading
import time

import psycopg


class Writer:
    """Inserts, updates and deletes rows of ``ledger`` until stopped (at most ``limit``)."""

    def __init__(self, url: str, first_id: int, seed: int, limit: int = 1_000_000) -> None:
        self.url = url
        self.next_id = first_id
        self.rng = random.Random(seed)
        self.stop = threading.Event()
        self.limit = limit
        self.statements = 0

    def run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.stop.is_set() and self.statements < self.limit:
                self._one(conn)
                self.statements += 1
                time.sleep(0.002)

    def _one(self, conn: psycopg.Connection[tuple[object, ...]]) -> None:
        pick = self.rng.random()
        key = self.rng.randrange(1, 300_000)
        if pick < 0.4:
            conn.execute(
                "INSERT INTO ledger VALUES (%s, %s, %s, 'new')",
                (self.next_id, self.next_id % 97, self.next_id * 0.01),
            )
            self.next_id += 1
        elif pick < 0.8:
            conn.execute("UPDATE ledger SET amount = amount + 1 WHERE id = %s", (key,))
        elif pick < 0.9:
            conn.execute("DELETE FROM ledger WHERE id = %s", (key,))
        else:
            with conn.transaction():
                conn.execute("UPDATE ledger SET note = 'tx' WHERE id = %s", (key,))
                conn.execute("INSERT INTO ledger VALUES (%s, 1, 1, 'tx')", (self.next_id,))
                self.next_id += 1


def compare_tables(source: str, target: str, table: str, key: str) -> None:
    """Assert both tables hold the same rows (ordered by ``key``)."""
    sql = f"SELECT * FROM {table} ORDER BY {key}"
    with psycopg.connect(source) as src, psycopg.connect(target) as dst:
        want = src.execute(sql).fetchall()
        got = dst.execute(sql).fetchall()
    missing = {r[0] for r in want} - {r[0] for r in got}
    extra = {r[0] for r in got} - {r[0] for r in want}
    assert not missing and not extra, f"missing {sorted(missing)[:10]}, extra {sorted(extra)[:10]}"
    differ = [w[0] for w, g in zip(want, got, strict=True) if w != g]
    assert not differ, f"rows differ for keys {differ[:10]}"
