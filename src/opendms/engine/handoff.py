"""What a CDC run hands to another consumer of its changes (handler functions).

The engine knows nothing of that consumer: the task service hands a
:class:`ChangeHandoff` to :func:`opendms.engine.task.run_task` (see
:mod:`opendms.handlers`). While changes stream, each batch is handed off *before* the
target applies it with its checkpoint, so whatever the target holds has been handed off
too; a batch applied again after a crash is handed off again, and the consumer drops
what it already has.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Protocol

from opendms.changes import Transaction

HandOff = Callable[[Sequence[Transaction]], None]
KeyColumns = Callable[[str, str], tuple[str, ...]]
"""(schema, table) -> the table's key columns as its changes name them (``()``: unknown)."""


class ChangeHandoff(Protocol):
    """A consumer told of every batch a CDC run applies."""

    def streaming(
        self, stop: threading.Event, key_of: KeyColumns
    ) -> AbstractContextManager[HandOff]:
        """Entered when the run starts streaming changes, left when it stops (``stop``
        set, caught up, or an error); gives the call that takes each batch. ``key_of``
        names a table's key columns (an insert carries no key of its own)."""
        ...
