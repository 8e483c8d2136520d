"""Broker benchmark (not a test): CDC records/s of a whole task into NATS JetStream.

    .venv/bin/python bench/nats_task_cdc.py [--rows 100000] [--format json]
    .venv/bin/python bench/nats_task_cdc.py --smoke     # tiny sizes, seconds (the suite runs it)

Where ``bench/broker_cdc.py`` times the applier alone, this times the task end to end:
a private ``nats-server -js`` (``tests.support.brokers``) and a SQLite -> nats://
``full-load-and-cdc`` task (of an empty table) run with ``task run --follow``; once it
streams, one transaction inserts ``rows`` rows into the source. Measured from that
COMMIT until the stream holds a message per row (JetStream stores a message before it
acks it, so that is when every record is acked). Records/s is ``rows`` / those seconds;
the goal on the reference machine is at least 20,000 records/s.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: tests.support
sys.path.insert(0, str(Path(__file__).resolve().parent))

from tests.support.brokers import NatsServer

from common import TaskRun, smoke_option, smoke_sizes, wait_until

LIMIT_S = 600.0
PREFIX, TASK = "bench", "tonats"
STREAM = f"OPENDMS_{PREFIX}_{TASK}"  # the engine's default stream name: a stream per task
SUBJECT = f"{PREFIX}.{TASK}.main.items"


def stored(server: str) -> int:
    """Messages of the bench's subject in its stream (0 before the stream exists)."""
    return asyncio.run(_stored(server))


async def _stored(server: str) -> int:
    import nats
    from nats.js.errors import NotFoundError

    nc = await nats.connect(servers=[server])
    try:
        info = await nc.jetstream().stream_info(STREAM, subjects_filter=SUBJECT)
    except NotFoundError:
        return 0
    finally:
        await nc.close()
    return int((info.state.subjects or {}).get(SUBJECT, 0))


def _insert(source: Path, rows: int) -> float:
    """Insert ``rows`` rows in one transaction; the monotonic time of its COMMIT."""
    with sqlite3.connect(source) as conn:
        conn.executemany(
            "INSERT INTO items VALUES (?, ?, ?)", ((i, f"row {i}", i * 0.5) for i in range(rows))
        )
    return time.monotonic()


def run(tmp: Path, server: str, rows: int, fmt: str) -> float:
    """Seconds from the COMMIT of ``rows`` inserts to all of them stored in JetStream."""
    source = tmp / "src.db"
    with sqlite3.connect(source) as conn:
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, v TEXT, n REAL)")
    spec = {
        "source": f"sqlite:///{source}",
        "target": {"url": f"{server}/{PREFIX}", "settings": {"MessageFormat": fmt}},
        "migration_type": "full-load-and-cdc",
        "task_settings": {"ChangeProcessingTuning": {"BatchApplyTimeoutMin": 0}},
    }
    with TaskRun(tmp, TASK, spec) as task:
        wait_until("the task to stream", task.streaming, 120, task)
        committed = _insert(source, rows)
        wait_until("every record in JetStream", lambda: stored(server) >= rows, LIMIT_S, task)
        return time.monotonic() - committed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--format", choices=("json", "arrow"), default="json")
    smoke_option(parser)
    args = parser.parse_args()
    smoke_sizes(args, rows=300)
    with NatsServer() as nats_server, tempfile.TemporaryDirectory(prefix="opendms-nats-") as tmp:
        took = run(Path(tmp), nats_server.server_url, args.rows, args.format)
    print(
        f"CDC to NATS JetStream ({args.format}): {args.rows:,} records in {took:.2f} s = "
        f"{args.rows / took:,.0f} records/s (goal >= 20,000)"
    )


if __name__ == "__main__":
    main()
