"""CDC soak (not a test): many SIGKILLs of a full-load-and-cdc task under write load.

    .venv/bin/python bench/cdc_soak.py [--kills 50] [--restarts 5] [--source pg|mysql] [--seed N]
    .venv/bin/python bench/cdc_soak.py --smoke [--source mysql]   # 3 kills, 2,000 rows

Private servers only. Each round creates a fresh ``ledger`` source table, runs
the task with ``--follow``, kills it with SIGKILL at random moments (during the
full load, the hand-off and streaming), restarts it each time, lets it catch up
and compares source and target row for row. ``--restarts`` times, before one of the
kills, the source's server is restarted under the running task, which must recover by
itself. Exit 1 at the first difference.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: tests.support
sys.path.insert(0, str(Path(__file__).resolve().parent))

from tests.support.crash import STREAMING, CrashRun, compare_tables, create_ledger
from tests.support.servers import MariaDBServer, PostgresServer

from common import smoke_option, smoke_sizes


def one_round(source_kind: str, kills: int, seed: int, rows: int, restarts: int) -> str:
    with tempfile.TemporaryDirectory() as tmp, PostgresServer() as pg:
        target = pg.create_database("target")
        if source_kind == "mysql":
            with MariaDBServer() as my:
                source = my.create_database("source")
                run = _run(source, target, Path(tmp), (kills, seed, rows, restarts), my.restart)
                return run
        source = pg.create_database("source")
        return _run(source, target, Path(tmp), (kills, seed, rows, restarts), pg.restart)


def _run(
    source: str, target: str, tmp: Path, sizes: tuple[int, int, int, int], restart: Any
) -> str:
    kills, seed, rows, restarts = sizes
    create_ledger(source, rows)
    run = CrashRun(
        source,
        target,
        tmp,
        kills=kills,
        seed=seed,
        rows=rows,
        restart=lambda: restart(down=1.0),
        restarts=restarts,
    )
    run.run()
    compare_tables(source, target, "ledger", "id")
    streamed = sum(phase == STREAMING for phase in run.phases)
    return (
        f"{kills} kills ({kills - streamed} before streaming, {streamed} while streaming), "
        f"{run.restarted} server restarts under the running task, "
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
    parser.add_argument("--restarts", type=int, default=5, help="source server restarts")
    smoke_option(parser)
    args = parser.parse_args()
    smoke_sizes(args, kills=3, rows=2000, rounds=1, restarts=1)
    for n in range(args.rounds):
        seed = args.seed if args.seed is not None else random.randrange(1 << 30)
        began = time.monotonic()
        try:
            result = one_round(args.source, args.kills, seed + n, args.rows, args.restarts)
        except AssertionError as exc:
            print(f"round {n + 1} (seed {seed + n}): FAILED: {exc}")
            sys.exit(1)
        print(f"round {n + 1} (seed {seed + n}, {time.monotonic() - began:.0f}s): {result}")


if __name__ == "__main__":
    main()
