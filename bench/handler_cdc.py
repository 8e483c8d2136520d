"""Handler benchmark (not a test): CDC records delivered to a no-op handler function.

    .venv/bin/python bench/handler_cdc.py [--rows 100000] [--batch-sizes 100,1000]
    .venv/bin/python bench/handler_cdc.py --smoke     # tiny sizes, seconds (the suite runs it)

A SQLite -> SQLite ``full-load-and-cdc`` task (of an empty table) runs with ``task run
--follow``; once it streams, one transaction inserts ``rows`` rows into the source.
Measured from that COMMIT: seconds until the target holds every row and, with a handler,
until the handler has received every record (its checkpoint in the state store). First
without handlers (the anchor: the CDC task alone), then with one no-op handler per batch
size. Records/s delivered is ``rows`` / seconds from COMMIT to the last record delivered
(capture, outbox, handler process). The goal on the reference machine is at least
20,000 records/s.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import TaskRun, smoke_option, smoke_sizes, wait_until
from opendms.handlers.store import HandlerStore

NOOP = "def nothing(records):\n    pass\n"
LIMIT_S = 600.0


def _count(db: Path) -> int:
    try:
        with sqlite3.connect(db) as conn:
            return int(conn.execute("SELECT count(*) FROM items").fetchone()[0])
    except sqlite3.OperationalError:  # not created yet
        return 0


def _delivered(state: Path, task: str) -> int:
    if not state.exists():
        return 0
    store = HandlerStore(state, task)
    try:
        return store.checkpoint("noop").delivered
    finally:
        store.close()


def _spec(tmp: Path, name: str, batch_size: int | None) -> dict[str, Any]:
    source = tmp / f"{name}-src.db"
    with sqlite3.connect(source) as conn:
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, v TEXT, n REAL)")
    spec: dict[str, Any] = {
        "source": f"sqlite:///{source}",
        "target": f"sqlite:///{tmp / f'{name}-dst.db'}",
        "migration_type": "full-load-and-cdc",  # the load creates the target table
    }
    if batch_size is not None:
        spec["handlers"] = [
            {"function": "bench_noop:nothing", "name": "noop", "BatchSize": batch_size}
        ]
    return spec


def _insert(source: Path, rows: int) -> float:
    """Insert ``rows`` rows in one transaction; the monotonic time of its COMMIT."""
    with sqlite3.connect(source) as conn:
        conn.executemany(
            "INSERT INTO items VALUES (?, ?, ?)", ((i, f"row {i}", i * 0.5) for i in range(rows))
        )
    return time.monotonic()


def run_job(tmp: Path, rows: int, batch_size: int | None) -> tuple[float, float | None]:
    """(seconds COMMIT -> target has every row, -> handler has every record)."""
    name = "plain" if batch_size is None else f"noop{batch_size}"
    with TaskRun(tmp, name, _spec(tmp, name, batch_size)) as task:
        wait_until(f"task {name} to stream", task.streaming, 120, task)
        committed = _insert(tmp / f"{name}-src.db", rows)
        target = tmp / f"{name}-dst.db"
        wait_until(f"{name}: the target", lambda: _count(target) == rows, LIMIT_S, task)
        to_target = time.monotonic() - committed
        if batch_size is None:
            return to_target, None
        state = tmp / f"{name}.db"
        every = lambda: _delivered(state, name) >= rows  # noqa: E731
        wait_until(f"{name}: the handler", every, LIMIT_S, task, every=0.2)
        return to_target, time.monotonic() - committed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batch-sizes", default="100,1000")
    smoke_option(parser)
    args = parser.parse_args()
    smoke_sizes(args, rows=300, batch_sizes="100")
    with tempfile.TemporaryDirectory(prefix="opendms-handler-bench-") as name:
        tmp = Path(name)
        (tmp / "bench_noop.py").write_text(NOOP)
        os.environ["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(tmp), os.environ.get("PYTHONPATH", "")) if p
        )
        plain, _ = run_job(tmp, args.rows, None)
        print(f"no handler: {args.rows:,} rows, COMMIT -> target {plain:.2f}s")
        for size in (int(s) for s in args.batch_sizes.split(",")):
            target, handler = run_job(tmp, args.rows, size)
            assert handler is not None
            print(
                f"no-op handler, BatchSize {size}: {args.rows:,} records, COMMIT -> target "
                f"{target:.2f}s, -> delivered {handler:.2f}s: "
                f"{args.rows / handler:,.0f} records/s delivered"
            )


if __name__ == "__main__":
    main()
