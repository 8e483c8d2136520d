"""Premigration assessment runs through an unmodified boto3 DMS client: the server's
checks are the CLI's (``opendms assess --json`` on the task file the server wrote)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from click.testing import CliRunner

from opendms.cli.main import cli
from tests.server.test_dms_api import _endpoints, _task
from tests.waiting import wait_until

pytestmark = pytest.mark.timeout(120)
ROLE = "arn:aws:iam::000000000000:role/dms-assessment"


def _source(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("CREATE TABLE notes (body TEXT)")  # no key: CDC cannot identify rows
        conn.execute("INSERT INTO items VALUES (1, 'a')")


def _run(dms: Any, task: str, name: str) -> dict[str, Any]:
    run = dms.start_replication_task_assessment_run(
        ReplicationTaskArn=task,
        ServiceAccessRoleArn=ROLE,
        ResultLocationBucket="results",
        AssessmentRunName=name,
    )["ReplicationTaskAssessmentRun"]
    run_arn = run["ReplicationTaskAssessmentRunArn"]

    def done() -> dict[str, Any] | None:
        runs = dms.describe_replication_task_assessment_runs(
            Filters=[{"Name": "replication-task-assessment-run-arn", "Values": [run_arn]}]
        )["ReplicationTaskAssessmentRuns"]
        return runs[0] if runs[0]["Status"] != "running" else None

    wait_until(lambda: done() is not None, 60, "the assessment run to finish")
    found = done()
    assert found is not None
    return found


def test_an_assessment_run_reports_the_cli_checks(dms: Any, tmp_path: Path) -> None:
    _source(tmp_path / "src.db")
    task = _task(dms, *_endpoints(dms, tmp_path))
    run = _run(dms, task, "first")
    cli_out = CliRunner().invoke(
        cli, ["assess", "--json", str(tmp_path / "state" / "tasks" / "items-task.json")]
    )
    expected = {c["id"]: c["status"] for c in json.loads(cli_out.output)}
    individual = dms.describe_replication_task_individual_assessments(
        Filters=[{"Name": "replication-task-arn", "Values": [task]}]
    )["ReplicationTaskIndividualAssessments"]
    assert {i["IndividualAssessmentName"]: i["Status"] for i in individual} == expected
    worst = "failed" if "failed" in expected.values() else "passed"
    worst = "warning" if worst == "passed" and "warning" in expected.values() else worst
    assert run["Status"] == worst and run["IsLatestTaskAssessmentRun"] is True
    counts = run["ResultStatistic"]
    assert counts["Passed"] == list(expected.values()).count("passed")
    assert counts["Warning"] == list(expected.values()).count("warning")
    results = dms.describe_replication_task_assessment_results(ReplicationTaskArn=task)
    [result] = results["ReplicationTaskAssessmentResults"]
    checks = json.loads(result["AssessmentResults"])
    assert {c["id"]: c["status"] for c in checks} == expected
    assert result["AssessmentStatus"] == worst and results["BucketName"] == "results"
    assert any("notes" in " ".join(c["objects"]) for c in checks if c["status"] != "passed")


def test_a_source_that_is_gone_fails_the_run_and_runs_are_managed(dms: Any, tmp_path: Path) -> None:
    task = _task(dms, *_endpoints(dms, tmp_path))  # src.db was never created
    run = _run(dms, task, "broken")
    assert run["Status"] == "failed" and run["ResultStatistic"]["Failed"] >= 1
    with pytest.raises(ClientError) as err:
        _run(dms, task, "broken")
    assert err.value.response["Error"]["Code"] == "ResourceAlreadyExistsFault"
    second = _run(dms, task, "again")
    runs = dms.describe_replication_task_assessment_runs()["ReplicationTaskAssessmentRuns"]
    latest = {r["AssessmentRunName"]: r["IsLatestTaskAssessmentRun"] for r in runs}
    assert latest == {"broken": False, "again": True}
    arn = second["ReplicationTaskAssessmentRunArn"]
    gone = dms.delete_replication_task_assessment_run(ReplicationTaskAssessmentRunArn=arn)
    assert gone["ReplicationTaskAssessmentRun"]["Status"] == "deleting"
    with pytest.raises(ClientError) as err:
        dms.cancel_replication_task_assessment_run(ReplicationTaskAssessmentRunArn=arn)
    assert err.value.response["Error"]["Code"] == "ResourceNotFoundFault"
    names = [
        r["AssessmentRunName"]
        for r in dms.describe_replication_task_assessment_runs()["ReplicationTaskAssessmentRuns"]
    ]
    assert names == ["broken"]
