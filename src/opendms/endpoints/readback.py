"""Reading a target's tables back for validation when the target is not a database that
can be opened as a source (a lake of files; next, a key-value store).

An engine with the ``read_back`` capability and no ``source`` one gives a
:class:`TableRows` (:meth:`Engine.table_rows`); validation compares what it yields with
the source's rows. :func:`check_columns` is the check both kinds of target side share.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol

import pyarrow as pa

from opendms.errors import NotComparableError
from opendms.model import Table


class TableRows(Protocol):
    """A target's tables, read whole (no filter pushdown)."""

    def batches(self, table: Table, columns: tuple[str, ...]) -> Iterator[pa.RecordBatch]:
        """Every row of target table ``table`` as it stands now: ``columns`` in that order,
        in ``table``'s canonical Arrow types. :class:`NotComparableError` when the table
        cannot be compared as it is (its columns differ, its changes cannot be folded),
        :class:`~opendms.errors.EndpointError` when it cannot be read."""
        ...


def check_columns(
    table: str, expected: tuple[str, ...], actual: list[str], norm: Callable[[str], str] = str
) -> None:
    """Raise :class:`NotComparableError` when the target's ``actual`` columns are not the
    ``expected`` ones, naming those missing on the target and those in addition."""
    have = {norm(c) for c in actual}
    wanted = {norm(c) for c in expected}
    missing = [c for c in expected if norm(c) not in have]
    extra = [c for c in actual if norm(c) not in wanted]
    if not (missing or extra):
        return
    parts = [f"missing on target: {', '.join(missing)}"] if missing else []
    parts += [f"extra on target: {', '.join(extra)}"] if extra else []
    message = f"source and target columns differ ({'; '.join(parts)}); not validated"
    raise NotComparableError(table, message)
