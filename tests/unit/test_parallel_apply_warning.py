"""The ParallelApply task settings are said to have no effect, except for a target
whose engine applies in parallel (DynamoDB), where they act."""

from __future__ import annotations

import logging

import pytest

from opendms.config import task_from_dict
from opendms.engine import task as task_module


def _warnings(target: str, caplog: pytest.LogCaptureFixture) -> list[str]:
    spec = task_from_dict(
        {
            "name": "t",
            "source": "sqlite:///s.db",
            "target": target,
            "migration_type": "cdc",
            "task_settings": {
                "TargetMetadata": {"ParallelApplyThreads": 8, "ParallelApplyBufferSize": 50}
            },
        },
        where="test",
    )
    task_module._warned_settings.clear()
    with caplog.at_level(logging.WARNING, logger="opendms"):
        task_module.warn_settings_without_effect(spec)
    return [r.getMessage() for r in caplog.records if "has no effect" in r.getMessage()]


def test_a_sqlite_target_is_told_parallel_apply_does_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    said = _warnings("sqlite:///t.db", caplog)
    assert any("ParallelApplyThreads" in m for m in said)
    assert any("ParallelApplyBufferSize" in m for m in said)


def test_a_dynamodb_target_uses_parallel_apply(caplog: pytest.LogCaptureFixture) -> None:
    assert _warnings("dynamodb://?region=us-east-1", caplog) == []
