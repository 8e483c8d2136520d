"""The ``handlers`` of a task file: both spellings of each key, and every mistake a
ConfigError naming its JSON path."""

from __future__ import annotations

from typing import Any

import pytest

from opendms.config import task_from_dict
from opendms.errors import ConfigError
from opendms.handlersettings import HandlerSpec

BASE: dict[str, Any] = {
    "name": "t",
    "source": "sqlite:///a.db",
    "target": "sqlite:///b.db",
    "migration_type": "cdc",
}


def _task(handlers: Any, **fields: Any) -> Any:
    return task_from_dict({**BASE, **fields, "handlers": handlers}, where="task.yaml")


def test_snake_case_and_lambda_names_mean_the_same() -> None:
    snake = _task(
        [
            {
                "function": "app.h:fn",
                "batch_size": 7,
                "max_batching_window_s": 0.5,
                "max_retry_attempts": -1,
                "max_record_age_s": 60,
                "bisect_batch_on_function_error": True,
                "timeout_s": 2,
                "tables": ["items"],
                "name": "one",
            }
        ]
    ).handlers
    lam = _task(
        [
            {
                "FunctionName": "app.h:fn",
                "BatchSize": 7,
                "MaximumBatchingWindowInSeconds": 0.5,
                "MaximumRetryAttempts": -1,
                "MaximumRecordAgeInSeconds": 60,
                "BisectBatchOnFunctionError": True,
                "Timeout": 2,
                "Tables": ["items"],
                "Name": "one",
            }
        ]
    ).handlers
    assert snake == lam
    assert snake[0].batch_size == 7 and snake[0].timeout_s == 2.0


def test_defaults() -> None:
    (spec,) = _task([{"function": "app.h:fn"}]).handlers
    assert spec.label == "app.h:fn"
    assert (spec.batch_size, spec.max_batching_window_s, spec.max_retry_attempts) == (100, 0, 3)
    assert (spec.max_record_age_s, spec.bisect_batch_on_function_error) == (-1, False)
    assert spec.timeout_s == 60.0 and spec.tables == ()


@pytest.mark.parametrize(
    ("handlers", "fields", "message"),
    [
        (
            [{"function": "app.h:fn", "bach_size": 3}],
            {},
            "task.yaml: $.handlers[0].bach_size: unknown key",
        ),
        (
            [{"function": "app.h:fn"}, {"function": "app.h"}],
            {},
            "task.yaml: $.handlers[1].function: Value error, 'app.h' is not a function path",
        ),
        ([{"function": "app h:fn"}], {}, "$.handlers[0].function: Value error, 'app h:fn'"),
        ([{"batch_size": 3}], {}, "task.yaml: $.handlers[0].FunctionName: Field required"),
        (
            [{"function": "a:b", "BatchSize": 0}],
            {},
            "$.handlers[0].BatchSize: Input should be greater than or equal to 1",
        ),
        ([{"function": "a:b", "max_retry_attempts": -2}], {}, "$.handlers[0].max_retry_attempts"),
        ([{"function": "a:b", "max_record_age_s": 0}], {}, "0 is not an age"),
        ([{"function": "a:b", "timeout_s": 0}], {}, "$.handlers[0].timeout_s"),
        ([{"function": "a:b", "tables": ["a.b.c"]}], {}, "'a.b.c' is not a table"),
        ([{"function": "a:b", "name": "no spaces"}], {}, "'no spaces' is not a handler name"),
        (
            [{"function": "a:b"}, {"function": "a:b"}],
            {},
            "task.yaml: $.handlers[1].name: a second handler named 'a:b'",
        ),
        (
            [{"function": "a:b"}],
            {"migration_type": "full-load"},
            "task.yaml: $.handlers: handlers receive change records: set migration_type",
        ),
        ({"function": "a:b"}, {}, "task.yaml: $.handlers: Input should be a valid"),
    ],
)
def test_mistakes_name_their_path(handlers: Any, fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _task(handlers, **fields)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("tables", "schema", "table", "takes"),
    [
        ((), "main", "items", True),
        (("items",), "main", "items", True),
        (("items",), "other", "items", True),
        (("main.items",), "other", "items", False),
        (("main.it%",), "main", "items", True),
        (("%.orders", "items"), "s", "orders", True),
        (("items",), "main", "Items", False),
        (("orders",), "main", "items", False),
    ],
)
def test_tables_select_the_records(
    tables: tuple[str, ...], schema: str, table: str, takes: bool
) -> None:
    spec = HandlerSpec.model_validate({"function": "a:b", "tables": list(tables)})
    assert spec.takes(schema, table) is takes
