"""Every benchmark script runs: each is run as a child process with ``--smoke`` (tiny
data, seconds, on private servers of its own like the suite's), and the test fails when
it exits non-zero or stops printing its results, so a change that breaks a benchmark
fails CI. No timing is asserted: the figures of a smoke run mean nothing."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
MODULES = {"common.py", "trips.py", "cdc_mysql.py"}  # imported by the scripts, not run

# script -> (extra arguments, markers, what its output must show)
SCRIPTS: dict[str, tuple[list[str], list[str], list[str]]] = {
    "cdc.py": (
        [],
        ["postgres", "mysql", "s3"],
        [
            # the 3,000-row UPDATEs (over STAGE_MIN) take the staged path, and say so
            r"opendms, 3,000-row UPDATE: apply paths: \d+ batches.*staged COPY\+merge 1 runs "
            r"\(3,000 changes\)",
            r"INFO opendms\.cdc: applied 3000 changes .* after commit; paths .*staged_rows=3000",
            r"3,000-row UPDATE, commit -> all applied: native [\d.]+s, opendms [\d.]+s",
            r"opendms, pgbench: apply paths: \d+ batches",
            r"pgbench -c4 -T1: ours: \d+ history rows behind",
            r"S3 Parquet lake: [\d,]+ history rows",
            r"opendms, MySQL 3,000-row UPDATE: apply paths: .*staged COPY\+merge 1 runs",
            r"mysql-replication decode only [\d.]+s \(3,000 rows\)",
        ],
    ),
    "full_load.py": (
        [],
        ["postgres", "mysql"],
        [
            r"pg2pg: load path: public\.trips raw COPY pass-through",
            r"my2pg: load path: src\.trips Arrow batches",
            r"PG -> PG vs psql COPY\|COPY binary +[\d.]+ +[\d.]+",
            r"pg2pg-psycopg: load path: public\.trips raw COPY pass-through",
            r"raw PG -> PG run 1: asyncpg [\d.]+s \(CPU [\d.]+s\), psycopg [\d.]+s",
            r"PG -> PG raw: asyncpg vs psycopg +[\d.]+ +[\d.]+",
            r"PG -> Parquet vs ADBC\+pyarrow +[\d.]+ +[\d.]+",
            r"MySQL -> PG vs pgloader",
            r"rows: 2,000",
        ],
    ),
    "validate.py": (
        [],
        ["postgres", "mysql"],
        [r"pg2pg +[\d.]+s( +[\d.]+s +[\d.]+x){4}", r"pg2mysql +[\d.]+s( +[\d.]+s +[\d.]+x){4}"],
    ),
    "binlog_decode.py": (
        [],
        ["mysql"],
        [r"opendms MySqlChangeSource\.stream +2000", r"stream ratio: [\d.]+x"],
    ),
    "expressions.py": (
        [],
        [],
        [r"concat \+ multiply +[\d,]+ +[\d,]+ +[\d.]+x", r"rows: 2,000"],
    ),
    "serve_load.py": (
        [],
        [],
        [
            r"GET /healthz \(anchor\) +[\d,]+ requests",
            r"Describe\*, REST, console +[\d,]+ requests .* p99 +[\d.]+ ms",
            r"tasks kept up: applied [\d,]+ and [\d,]+ rows",
        ],
    ),
    "handler_cdc.py": (
        [],
        [],
        [
            r"no handler: 300 rows, COMMIT -> target [\d.]+s",
            r"no-op handler, BatchSize 100: 300 records, .* [\d,]+ records/s delivered",
        ],
    ),
    "dynamodb_load.py": (
        [],
        ["dynamodb"],
        [
            r"dynalite, loopback: items/s: batch_writer [\d,]+, opendms [\d,]+",
            r"DynamoDB load vs batch_writer, 4 ms RTT +[\d.]+ +[\d.]+ +[\d.]+x",
        ],
    ),
    "query.py": (
        [],
        ["postgres", "dynamodb"],
        [
            r"opendms query \(pushdown\): [\d.]+s: pg\.public\.trips 1 rows .*"
            r"ddb\.dynamodb\.items \d+ rows in [\d.]+s, 1 Query",
            r"selective join, PG \+ DynamoDB +[\d.]+ +[\d.]+ +[\d.]+x",
            r"Athena over the lake 22\.6s",
        ],
    ),
    "broker_cdc.py": (
        [],
        ["brokers"],
        [
            r"NATS JetStream \(json\) +[\d,]+ +[\d,]+ +[\d.]+x",
            r"Redis Streams \(json\) +[\d,]+ +[\d,]+ +[\d.]+x",
            r"streams fold to the rows written: yes",
        ],
    ),
    "nats_task_cdc.py": (
        [],
        ["brokers"],
        [r"CDC to NATS JetStream \(json\): 300 records in [\d.]+ s = [\d,]+ records/s"],
    ),
    "cdc_soak.py": (
        [],
        ["postgres"],
        [r"round 1 \(seed \d+, \d+s\): 3 kills .*: target equals source"],
    ),
}


def _marks(names: list[str]) -> list[pytest.MarkDecorator]:
    return [getattr(pytest.mark, name) for name in names]


@pytest.mark.parametrize(
    "script",
    [pytest.param(name, marks=_marks(SCRIPTS[name][1]), id=name) for name in SCRIPTS],
)
def test_bench_script_runs_in_smoke_size(script: str) -> None:
    args, _, expected = SCRIPTS[script]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(BENCH.parent / "src"), *_path()])}
    done = subprocess.run(
        [sys.executable, str(BENCH / script), "--smoke", *args],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, f"bench/{script} --smoke failed:\n{out[-3000:]}"
    for pattern in expected:
        assert re.search(pattern, out), f"bench/{script}: no {pattern!r} in:\n{out[-3000:]}"


def _path() -> list[str]:
    current = os.environ.get("PYTHONPATH", "")
    return [p for p in current.split(os.pathsep) if p]


def test_every_bench_script_has_a_smoke_test() -> None:
    """A new script in bench/ gets a --smoke size and a line in SCRIPTS."""
    found = {p.name for p in BENCH.glob("*.py")}
    assert found - MODULES == set(SCRIPTS), "add the new bench script to SCRIPTS"
    for name in SCRIPTS:
        assert "smoke_option(parser)" in (BENCH / name).read_text(), name
