"""CDC soak (not a test): many SIGKILLs of a full-load-and-cdc task under write load.

    .venv/bin/python bench/cdc_soak.py [--kills 50] [--source pg|mysql] [--seed N] [--rounds 1]
    .venv/bin/python bench/cdc_soak.py --smoke [--source mysql]   # 3 kills, 2,000 rows

Private servers only. Each round creates a fresh ``ledger`` source table, runs
the task with ``--follow``, kills it with SIGKILL at random moments (during the
full load, the hand-off and streaming), restarts it each time, lets it catch up
and compares source and target row for row. Exit 1 at the first difference.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import smoke_option, smoke_sizes
from opendms.testing.crash import (
    CrashRun,
    compare_tables,
    create_ledger,
    pg_checkpointed,
    pg_copy_running,
)
from opendms.testing.servers import MariaDBServer, PostgresServer


def one_round(source_kind: str, kills: int, seed: int, rows: int) -> str:
    with tempfile.TemporaryDirectory() as tmp, PostgresServer() as pg:
        target = pg.create_database("target")
        if source_kind == "mysql":
            with MariaDBServer() as my:
                source = my.create_database("source")
                return _crash(source, target, Path(tmp), kills, seed, rows)
        source = pg.create_database("source")
        return _crash(source, target, Path(tmp), kills, seed, rows)


def _crash(source: str, target: str, tmp: Path, kills: int, seed: int, rows: int) -> str:
    create_ledger(source, rows)
    run = CrashRun(
        source,
        target,
        tmp,
        kills=kills,
        seed=seed,
        rows=rows,
        in_load=lambda: pg_copy_running(target),
        streaming=lambda: pg_checkpointed(target),
    )
    run.run()
    compare_tables(source, target, "ledger", "id")
    streamed = sum(run.phases)
    return (
        f"{kills} kills ({kills - streamed} before streaming, {streamed} while streaming), "
        f"{run.statements:,} write statements: target equals source"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--source", choices=("pg", "mysql"), default="pg")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--rows", type=int, default=200_000)
    smoke_option(parser)
    args = parser.parse_args()
    smoke_sizes(args, kills=3, rows=2000, rounds=1)
    for n in range(args.rounds):
        seed = args.seed if args.seed is not None else random.randrange(1 << 30)
        began = time.monotonic()
        try:
            result = one_round(args.source, args.kills, seed + n, args.rows)
        except AssertionError as exc:
            print(f"round {n + 1} (seed {seed + n}): FAILED: {exc}")
            sys.exit(1)
        print(f"round {n + 1} (seed {seed + n}, {time.monotonic() - began:.0f}s): {result}")


if __name__ == "__main__":
    main()
