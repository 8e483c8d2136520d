"""Files that may hold row values (the state store, logs, validation reports) are
readable by their owner only: created mode 0600, their folders 0700."""

from __future__ import annotations

import os
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700


def private_dir(path: Path) -> None:
    """Create ``path`` (and parents) if missing; a folder opendms creates is 0700."""
    if not path.is_dir():
        path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)


def private_file(path: Path) -> None:
    """Create ``path`` empty if missing, mode 0600; an existing file is made 0600.

    An existing file is never opened: closing any descriptor of a file drops every
    POSIX lock this process holds on it, and SQLite's locks on a state file that
    another connection of this process has open are such locks (it would go on
    believing it holds them)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        os.chmod(path, FILE_MODE)
        return
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)


def write_private(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` (UTF-8), readable by the owner only."""
    private_file(path)
    path.write_text(text, encoding="utf-8")
