"""``opendms workflow validate|run`` as a user runs them: seed 003's two-state machine
with its Retry (a first failure retried), its second definition's missing comma, a
failing execution's exit status and the history on stderr."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

RETRY = {"ErrorEquals": ["States.ALL"], "IntervalSeconds": 1, "MaxAttempts": 3, "BackoffRate": 2}


def _machine(tmp_path: Path) -> Path:
    path = tmp_path / "seed003.json"
    first = "python:tests.workflow_fixtures.seed003:to_files"
    second = "python:tests.workflow_fixtures.seed003:to_mysql"
    definition = {
        "Comment": "State machine to populate databases for reports.",
        "StartAt": "MySql To S3 Files",
        "States": {
            "MySql To S3 Files": {
                "Type": "Task",
                "Resource": first,
                "ResultPath": "$.guid",
                "Next": "S3 Data To Mysql",
                "Retry": [RETRY],
            },
            "S3 Data To Mysql": {
                "Type": "Task",
                "Resource": second,
                "InputPath": "$.guid",
                "End": True,
                "Retry": [RETRY],
            },
        },
    }
    path.write_text(json.dumps(definition, indent=2))
    return path


def _opendms(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "WORKFLOW_DIR": str(tmp_path)}
    cmd = [str(Path(sys.executable).parent / "opendms"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)


def test_seed_003_machine_runs_with_its_retry(tmp_path: Path) -> None:
    machine = _machine(tmp_path)
    checked = _opendms(tmp_path, "workflow", "validate", str(machine))
    assert checked.returncode == 0 and "valid, 2 state(s)" in checked.stdout
    done = _opendms(
        tmp_path, "workflow", "run", str(machine), "--input", '{"company": 7}', "--history"
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"loaded": "7-guid", "rows": 3}
    events = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    kinds = [e["type"] for e in events]
    assert kinds.count("StateRetried") == 1 and kinds[-1] == "ExecutionSucceeded"
    failed = next(e for e in events if e["type"] == "StateFailed")
    assert failed["error"] == "ConnectionError"


def test_the_second_definitions_missing_comma_is_named(tmp_path: Path) -> None:
    path = tmp_path / "parallel.json"
    path.write_text(
        '{\n"Comment": "State machine to populate databases for reports."\n'
        '"StartAt": "MySql To S3 Files",\n"States": {}\n}\n'
    )
    done = _opendms(tmp_path, "workflow", "run", str(path))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith(f"error: {path}: not valid JSON: Expecting ',' delimiter")
    assert "line 3, column 1 (a comma missing at the end of line 2" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_failed_execution_exits_1_and_bad_input_2(tmp_path: Path) -> None:
    path = tmp_path / "fail.json"
    path.write_text(
        json.dumps({"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "E", "Cause": "c"}}})
    )
    done = _opendms(tmp_path, "workflow", "run", str(path))
    assert done.returncode == 1 and done.stderr.strip() == "error: the execution failed: E: c"
    bad = _opendms(tmp_path, "workflow", "run", str(path), "--input", "{nope")
    assert bad.returncode == 2 and "--input: not valid JSON" in bad.stderr
