"""The conformance suite: every registered engine, by the capabilities it declares.

Each test takes the ``endpoint`` fixture (every engine and URL variant, see
``conftest.py``); a test marked ``@needs(capability)`` is collected only for the engines
that declare it (deselected, not skipped, for the others). A new engine passes by
declaring itself and a URL factory.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest

from opendms.endpoints import check_endpoint, open_applier, open_target
from opendms.endpoints.base import EndpointURL, PrepMode, Target
from opendms.endpoints.engine import ApplyOptions
from opendms.errors import ConfigError
from tests.conformance.conftest import Endpoint, needs, typed_settings
from tests.conformance.readback import TABLE, batch_of, read_back, unreported_changes
from tests.integration.test_apply_targets import delete, ins, null_item, plan, txn, upd
from tests.integration.test_apply_targets import item as any_item


def item(i: int, variant: int = 0) -> dict[str, Any]:
    """A row of every canonical type, without the NUL character in text: PostgreSQL
    text cannot hold it, and its target says so in ``reject`` (tested elsewhere)."""
    row = any_item(i, variant)
    return {**row, "txt": row["txt"].replace("\x00", "")}


ROWS = [item(1), null_item(2), item(3), item(4)]


def test_check_names_the_engine(endpoint: Endpoint, source_url: str) -> None:
    message = check_endpoint(source_url)
    assert endpoint.engine.title.casefold() in message.casefold(), message


def test_unknown_setting_is_a_config_error_naming_it(endpoint: Endpoint, source_url: str) -> None:
    with pytest.raises(ConfigError, match="NoSuchSettingX"):
        check_endpoint(source_url, {"NoSuchSettingX": "1"})


@needs("typed_setting")
def test_setting_of_the_wrong_kind_is_a_config_error_naming_it(
    endpoint: Endpoint, source_url: str
) -> None:
    typed = typed_settings(endpoint)
    with pytest.raises(ConfigError, match=typed[0]):
        check_endpoint(source_url, {typed[0]: "not-a-value"})


def _load(target: Target, rows: list[dict[str, object]]) -> None:
    target.prepare(TABLE, PrepMode.DROP_AND_CREATE)
    writer = target.writer(TABLE, None)
    writer.write(batch_of(TABLE, rows))
    assert writer.close() == len(rows)
    target.finish(TABLE)


@needs("target")
def test_full_load_round_trips_every_canonical_type(endpoint: Endpoint, target_url: str) -> None:
    target = open_target(target_url)
    try:
        assert not target.reject(TABLE, batch_of(TABLE, ROWS))
        _load(target, ROWS)
    finally:
        target.close()
    got = read_back(endpoint.engine, target_url, TABLE)
    assert unreported_changes(endpoint.engine, TABLE, got, ROWS) == []


def _apply_batches(target: Target, idempotent: bool) -> tuple[int, str | None]:
    applier = open_applier(target, "conformance", [plan(TABLE)], ApplyOptions())
    try:
        applier.read_checkpoint()  # how a CDC task starts (the PostgreSQL applier needs it)
        first = [txn(1, ins(TABLE, item(5)), ins(TABLE, item(6)), ins(TABLE, null_item(7)))]
        second = [
            txn(2, upd(TABLE, {"id": 1}, item(1, variant=1)), delete(TABLE, {"id": 3})),
            txn(3, upd(TABLE, {"id": 5}, item(5, variant=2)), delete(TABLE, {"id": 6})),
        ]
        applied = applier.apply(first, "1", idempotent)
        applied += applier.apply(second, "3", idempotent)
        return applied, applier.read_checkpoint()
    finally:
        applier.close()


EXPECTED = [item(1, variant=1), null_item(2), item(4), item(5, variant=2), null_item(7)]


@needs("cdc_target")
def test_cdc_apply_with_checkpoint(endpoint: Endpoint, target_url: str) -> None:
    target = open_target(target_url)
    try:
        _load(target, ROWS)
        assert _apply_batches(target, idempotent=False) == (7, "3")
        applier = open_applier(target, "conformance", [plan(TABLE)], ApplyOptions())
        applier.write_checkpoint("42")
        assert applier.read_checkpoint() == "42"
        applier.close()
    finally:
        target.close()
    got = read_back(endpoint.engine, target_url, TABLE)
    assert unreported_changes(endpoint.engine, TABLE, got, EXPECTED) == []


@needs("cdc_target")
def test_idempotent_apply_twice_leaves_the_same_rows(endpoint: Endpoint, target_url: str) -> None:
    target = open_target(target_url)
    try:
        _load(target, ROWS)
        _apply_batches(target, idempotent=True)
        _apply_batches(target, idempotent=True)
    finally:
        target.close()
    got = read_back(endpoint.engine, target_url, TABLE, lenient=True)
    assert unreported_changes(endpoint.engine, TABLE, got, EXPECTED) == []


@needs("cdc_target")
def test_a_new_applier_applies_before_reading_its_checkpoint(
    endpoint: Endpoint, target_url: str
) -> None:
    """The Applier protocol does not require read_checkpoint before apply."""
    target = open_target(target_url)
    try:
        _load(target, ROWS)
        applier = open_applier(target, "fresh", [plan(TABLE)], ApplyOptions())
        assert applier.apply([txn(1, ins(TABLE, item(5)))], "1", idempotent=False) == 1
        assert applier.read_checkpoint() == "1"
        applier.close()
    finally:
        target.close()


@needs("read_back_whole")
def test_validation_reads_back_the_rows_written(endpoint: Endpoint, target_url: str) -> None:
    """What validation reads from a target it cannot open as a source (the engine's
    ``table_rows``) is what was written, in the canonical types."""
    target = open_target(target_url)
    try:
        _load(target, ROWS)
    finally:
        target.close()
    rows = endpoint.engine.table_rows(EndpointURL.parse(target_url), {})
    assert rows is not None
    names = tuple(c.name for c in TABLE.columns)
    got = pa.Table.from_batches(list(rows.batches(TABLE, names))).to_pylist()
    assert len(got) == len(ROWS)
    assert unreported_changes(endpoint.engine, TABLE, _by_id(got), ROWS) == []


def _by_id(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: int(r["id"]))
