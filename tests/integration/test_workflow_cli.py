"""``opendms workflow validate|run`` as a user runs them: seed 003's two-state machine
with its Retry (a first failure retried), its second definition's missing comma, a
failing execution's exit status and the history on stderr."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.waiting import wait_until

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
    env = {**os.environ, "WORKFLOW_DIR": str(tmp_path), "OPENDMS_STATE": str(tmp_path / "s.db")}
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
    said = done.stderr.strip().splitlines()
    assert done.returncode == 1 and said[-1] == "error: the execution failed: E: c"
    assert said[0].startswith("execution fail-")  # the name to describe it by
    bad = _opendms(tmp_path, "workflow", "run", str(path), "--input", "{nope")
    assert bad.returncode == 2 and "--input: not valid JSON" in bad.stderr


def _durable(tmp_path: Path) -> Path:
    fixture = "python:tests.workflow_fixtures.durable"
    item = {
        "StartAt": "Square",
        "States": {"Square": {"Type": "Task", "Resource": f"{fixture}:item", "End": True}},
    }
    definition = {
        "StartAt": "First",
        "States": {
            "First": {"Type": "Task", "Resource": f"{fixture}:first", "Next": "Each"},
            "Each": {"Type": "Map", "MaxConcurrency": 1, "ItemProcessor": item, "Next": "Last"},
            "Last": {"Type": "Task", "Resource": f"{fixture}:last", "End": True},
        },
    }
    path = tmp_path / "durable.json"
    path.write_text(json.dumps(definition))
    return path


def test_a_killed_execution_resumes_without_running_a_finished_task_twice(
    tmp_path: Path,
) -> None:
    machine = _durable(tmp_path)
    log = tmp_path / "calls.log"
    env = {**os.environ, "WORKFLOW_DIR": str(tmp_path), "OPENDMS_STATE": str(tmp_path / "s.db")}
    opendms = str(Path(sys.executable).parent / "opendms")
    run = [opendms, "workflow", "run", str(machine), "--name", "e1", "--input", '{"items": 4}']
    proc = subprocess.Popen(run, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: log.exists() and "start 2" in log.read_text(), 60, "item 2's Task")
    finally:
        proc.kill()  # SIGKILL while item 2's Task runs
        proc.communicate()
    described = json.loads(_opendms(tmp_path, "workflow", "describe", "e1").stdout)
    assert described["status"] == "RUNNING" and described["interrupted"] is True
    listed = json.loads(_opendms(tmp_path, "workflow", "list", "--json").stdout)
    assert [(e["name"], e["status"]) for e in listed] == [("e1", "RUNNING")]

    (tmp_path / "go").write_text("")
    resumed = _opendms(tmp_path, "workflow", "resume", "e1")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout) == {"sum": 0 + 1 + 4 + 9}
    calls = log.read_text().splitlines()
    # the finished Tasks ran once; item 2's, killed in flight, ran again (at least once)
    assert calls == [
        "first",
        *("start 0", "done 0", "start 1", "done 1", "start 2"),
        *("start 2", "done 2", "start 3", "done 3", "last"),
    ]
    described = json.loads(_opendms(tmp_path, "workflow", "describe", "e1").stdout)
    assert described["status"] == "SUCCEEDED" and described["output"] == {"sum": 14}
    history = json.loads(_opendms(tmp_path, "workflow", "history", "e1", "--json").stdout)
    kinds = [e["type"] for e in history]
    assert [e["id"] for e in history] == list(range(1, len(history) + 1))
    assert kinds[0] == "ExecutionStarted" and kinds[-1] == "ExecutionSucceeded"
    assert kinds.count("ExecutionResumed") == 1
    entered = [e["state"] for e in history if e["type"] == "StateEntered"]
    assert entered.count("First") == 1 and entered.count("Square") == 5  # item 2 twice
    again = _opendms(tmp_path, "workflow", "resume", "e1")
    assert again.returncode == 2 and "has ended (SUCCEEDED)" in again.stderr


def test_execution_names_are_unique_and_unknown_ones_are_named(tmp_path: Path) -> None:
    path = tmp_path / "pass.json"
    path.write_text(json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}))
    first = _opendms(tmp_path, "workflow", "run", str(path), "--name", "n1", "--input", "[1]")
    assert first.returncode == 0 and json.loads(first.stdout) == [1]
    twice = _opendms(tmp_path, "workflow", "run", str(path), "--name", "n1")
    assert twice.returncode == 2 and "an execution named 'n1' exists already" in twice.stderr
    missing = _opendms(tmp_path, "workflow", "history", "nope")
    assert missing.returncode == 2 and "no workflow execution named 'nope'" in missing.stderr
    table = _opendms(tmp_path, "workflow", "list")
    assert "n1" in table.stdout and "SUCCEEDED" in table.stdout
