"""A second StateStore on the same file in one process must not drop the first one's
SQLite locks: closing any descriptor of a file drops every POSIX lock the process holds
on it, and a WAL connection whose shared lock is gone can see another process delete
the WAL under it (its later writes then vanish)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from opendms.state import StateStore
from opendms.state.private import FILE_MODE, private_file

OTHER = """
import sys
from opendms.state import StateStore
store = StateStore(sys.argv[1])
print(store.task(sys.argv[2]) is not None)
store.close()
"""


def _seen_by_another_process(path: Path, name: str) -> bool:
    done = subprocess.run(
        [sys.executable, "-c", OTHER, str(path), name],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip() == "True"


def test_a_second_store_keeps_the_first_ones_writes_visible(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    first = StateStore(path)
    second = StateStore(path)  # opened while the first is open, in the same process
    assert not _seen_by_another_process(path, "nothing")  # opens and closes the file
    first.save_task("after", "src", "dst", "full-load", "{}")
    assert _seen_by_another_process(path, "after")
    second.close()
    first.close()


def test_private_file_creates_and_fixes_the_mode(tmp_path: Path) -> None:
    path = tmp_path / "f"
    private_file(path)
    assert path.stat().st_mode & 0o777 == FILE_MODE and path.read_bytes() == b""
    path.write_text("kept")
    path.chmod(0o644)
    private_file(path)
    assert path.stat().st_mode & 0o777 == FILE_MODE and path.read_text() == "kept"
