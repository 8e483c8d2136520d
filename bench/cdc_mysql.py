"""MySQL/MariaDB -> PostgreSQL CDC benchmark job (run by bench/cdc.py --jobs mysql).

Fills a ``trips`` table on a private MariaDB, runs an opendms ``full-load-and-cdc``
task into a private PostgreSQL (``task run --follow``), and once it streams, UPDATEs
every row: seconds from COMMIT until PostgreSQL shows every updated row. The anchor
is ``mysql-replication`` only decoding the same binlog events (no apply at all).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from binlog_decode import _execute, decode_with_mysql_replication, position
from opendms.state import StateStore
from opendms.testing.servers import MariaDBServer, PostgresServer
from trips import mysql_ddl, mysql_fill

BIN = Path(sys.executable).parent
PROBE = "id = 1 AND status = 'Updated'"


def _wait(pg: PostgresServer, sql: str, want: int, limit: float = 900) -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < limit:
        try:
            if pg.execute(sql, db="dst")[0][0] == want:
                return time.perf_counter() - start
        except Exception:  # the table is not there yet
            pass
        time.sleep(0.05)
    raise SystemExit(f"timed out waiting for {sql!r} to reach {want}")


def _streaming(state: Path, limit: float = 900) -> None:
    start = time.perf_counter()
    while time.perf_counter() - start < limit:
        record = StateStore(state).task("mybench") if state.exists() else None
        if record is not None and record.phase == "ongoing replication":
            return
        time.sleep(0.2)
    raise SystemExit("the task did not reach ongoing replication")


def mysql_job(rows: int) -> None:
    with tempfile.TemporaryDirectory() as tmpdir, MariaDBServer() as my, PostgresServer() as pg:
        tmp = Path(tmpdir)
        url = my.create_database("src")
        _execute(url, "DROP TABLE IF EXISTS trips", mysql_ddl(), mysql_fill(rows))
        pg.create_database("dst")
        task = tmp / "task.yaml"
        spec = {"name": "mybench", "source": url, "target": pg.url("dst")}
        task.write_text(yaml.safe_dump({**spec, "migration_type": "full-load-and-cdc"}))
        state = tmp / "state.db"
        cmd = [str(BIN / "opendms"), "--state", str(state), "task", "run", "--quiet", "--follow"]
        proc = subprocess.Popen([*cmd, str(task)], stdout=subprocess.DEVNULL)
        try:
            _streaming(state)
            start = position(url)
            _execute(url, "UPDATE trips SET fare_amount = fare_amount + 1, status = 'Updated'")
            end = position(url)
            # The UPDATE is one transaction and is applied as one: probe one row by key
            # (cheap, so the probe does not steal the 2 cores), then check every row.
            applied = _wait(pg, f"SELECT count(*) FROM src.trips WHERE {PROBE}", 1)
            done = pg.execute("SELECT count(*) FROM src.trips WHERE status = 'Updated'", db="dst")
            if done[0][0] != rows:
                raise SystemExit(f"only {done[0][0]} of {rows} rows were updated")
        finally:
            proc.terminate()
            proc.wait(timeout=120)
        decoded, decode_s = decode_with_mysql_replication(url, start, end)
    print(
        f"MySQL -> PostgreSQL, {rows:,}-row UPDATE: opendms commit -> all applied {applied:.2f}s;"
        f" mysql-replication decode only {decode_s:.2f}s ({decoded:,} rows); "
        f"ratio {decode_s / applied:.2f}x (goal >= 5x)"
    )
