"""Folding a batch per key gives the same table as applying every change in order."""

from __future__ import annotations

import random
from typing import Any

import pytest

from opendms.changes import UNCHANGED, Change, Op
from opendms.endpoints.postgres.netchanges import net_changes

COLS = ("id", "a", "b")
KEY = ("id",)


def _apply(table: dict[Any, dict[str, Any]], changes: list[Change]) -> None:
    for c in changes:
        if c.op is Op.TRUNCATE:
            table.clear()
        elif c.op is Op.INSERT:
            row = dict(zip(c.columns, c.values, strict=True))
            assert row["id"] not in table
            table[row["id"]] = row
        elif c.op is Op.DELETE:
            table.pop(c.key[0], None)
        else:
            old = table.pop(c.key[0], None)
            if old is None:
                continue
            for col, value in zip(c.columns, c.values, strict=True):
                if value is not UNCHANGED:
                    old[col] = value
            table[old["id"]] = old


def _random_batch(rng: random.Random, start: dict[Any, dict[str, Any]]) -> list[Change]:
    """A valid sequence of source changes against ``start`` (keys 0..5)."""
    live = dict((k, dict(v)) for k, v in start.items())
    out = []
    for _ in range(rng.randrange(1, 30)):
        k = rng.randrange(6)
        roll = rng.random()
        if roll < 0.05:
            out.append(Change(Op.TRUNCATE, "s", "t"))
            live.clear()
        elif k not in live:
            vals: tuple[object, ...] = (k, rng.randrange(9), rng.randrange(9))
            out.append(Change(Op.INSERT, "s", "t", COLS, vals))
            live[k] = dict(zip(COLS, vals, strict=True))
        elif roll < 0.3:
            out.append(Change(Op.DELETE, "s", "t", (), (), KEY, (k,)))
            del live[k]
        elif roll < 0.4:  # primary-key change
            new = rng.randrange(6, 12)
            if new in live:
                continue
            vals = (new, live[k]["a"], UNCHANGED)
            out.append(Change(Op.UPDATE, "s", "t", COLS, vals, KEY, (k,)))
            row = live.pop(k)
            row["id"] = new
            live[new] = row
        else:
            b = UNCHANGED if rng.random() < 0.5 else rng.randrange(9)
            vals = (k, rng.randrange(9), b)
            out.append(Change(Op.UPDATE, "s", "t", COLS, vals, KEY, (k,)))
            live[k]["a"] = vals[1]
            if b is not UNCHANGED:
                live[k]["b"] = b
    return out


@pytest.mark.parametrize("seed", range(300))
def test_folded_batch_equals_sequential_apply(seed: int) -> None:
    rng = random.Random(seed)
    start = {k: {"id": k, "a": k, "b": "toast"} for k in range(0, 6, 2)}
    batch = _random_batch(rng, start)
    sequential, folded = (
        {k: dict(v) for k, v in start.items()},
        {k: dict(v) for k, v in start.items()},
    )
    _apply(sequential, batch)
    net = net_changes(batch, {("s", "t"): KEY})
    _apply(folded, net)
    assert folded == sequential
    assert len(net) <= len(batch)


def test_hot_rows_fold_to_one_statement_each() -> None:
    batch = [Change(Op.UPDATE, "s", "t", COLS, (1, i, UNCHANGED), KEY, (1,)) for i in range(50)]
    batch += [Change(Op.INSERT, "s", "h", ("id",), (i,)) for i in range(3)]
    net = net_changes(batch, {("s", "t"): KEY})
    assert len(net) == 4
    assert net[-1].values == (1, 49, UNCHANGED)


def test_tables_without_a_key_entry_are_left_alone() -> None:
    batch = [Change(Op.UPDATE, "s", "t", COLS, (1, i, 1), KEY, (1,)) for i in range(3)]
    assert net_changes(batch, {}) == batch
