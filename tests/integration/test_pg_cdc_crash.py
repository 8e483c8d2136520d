"""Crash test: SIGKILL a full-load-and-cdc task at random moments under write load.

Kills land during the full load, the hand-off and streaming (fixed seed). After the
last restart catches up, the target must equal the source: nothing lost, nothing
applied twice. ``bench/cdc_soak.py`` runs the same with more kills.
"""

from __future__ import annotations

from pathlib import Path

from opendms.testing.crash import (
    CrashRun,
    compare_tables,
    create_ledger,
    pg_checkpointed,
    pg_copy_running,
    state_loading,
)


def test_sigkill_anywhere_loses_and_duplicates_nothing(
    pg_db: str, pg_target_db: str, tmp_path: Path
) -> None:
    create_ledger(pg_db, 300_000)
    run = CrashRun(
        pg_db,
        pg_target_db,
        tmp_path,
        in_load=lambda: pg_copy_running(pg_target_db),
        streaming=lambda: pg_checkpointed(pg_target_db),
    )
    run.run()
    assert run.statements > 50
    assert any(run.phases) and not all(run.phases), run.phases  # in full load and streaming
    compare_tables(pg_db, pg_target_db, "ledger", "id")


def test_mysql_source_sigkill_anywhere(mysql_db: str, pg_target_db: str, tmp_path: Path) -> None:
    """The same with a MariaDB binlog source: its snapshot-less full load is repaired by
    the idempotent catch-up, also when a kill lands inside that phase."""
    create_ledger(mysql_db, 60_000)
    run = CrashRun(
        mysql_db,
        pg_target_db,
        tmp_path,
        rows=60_000,
        in_load=lambda: state_loading(tmp_path / "state.db") or pg_copy_running(pg_target_db),
        streaming=lambda: pg_checkpointed(pg_target_db),
    )
    run.run()
    assert run.statements > 50
    assert any(run.phases) and not all(run.phases), run.phases
    compare_tables(mysql_db, pg_target_db, "ledger", "id")
