"""The DMS API's premigration assessment operations (see :mod:`.assessments`):
StartReplicationTaskAssessmentRun, DescribeReplicationTaskAssessmentRuns,
DescribeReplicationTaskIndividualAssessments, CancelReplicationTaskAssessmentRun,
DeleteReplicationTaskAssessmentRun, and the older StartReplicationTaskAssessment with
DescribeReplicationTaskAssessmentResults."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from opendms.server.assessments import Run
from opendms.server.resources import arn, new_id
from opendms.server.shapes import Body, filtered, marked, not_found, one_page, required

if TYPE_CHECKING:
    from opendms.server.dmsapi import DmsApi

Operation = Callable[["DmsApi", Body], Body]


def _start(api: DmsApi, task_arn: str, name: str, body: Body) -> Run:
    task = api.task(task_arn)
    spec = api._spec(task)  # a bad mapping or endpoint is the caller's error, now
    run = Run(
        arn=arn(api.region, "assessment-run", new_id()),
        task_arn=task.arn,
        task_identifier=task.identifier,
        name=name,
        bucket=str(body.get("ResultLocationBucket", "")),
        folder=str(body.get("ResultLocationFolder", "")),
        role_arn=str(body.get("ServiceAccessRoleArn", "")),
    )

    def assess() -> Any:
        from opendms.assess import assess

        return assess(spec)

    return api.assessments.start(run, assess)


def start_run(api: DmsApi, body: Body) -> Body:
    for key in ("ServiceAccessRoleArn", "ResultLocationBucket"):
        required(body, key)  # required by DMS: recorded, not used (results stay here)
    name = required(body, "AssessmentRunName")
    if any(r.name == name for r in api.assessments.runs()):
        from opendms.server.shapes import DmsError

        raise DmsError("ResourceAlreadyExistsFault", f"assessment run {name} already exists")
    run = _start(api, required(body, "ReplicationTaskArn"), name, body)
    return {"ReplicationTaskAssessmentRun": run.out(latest=True)}


def _run_fields() -> dict[str, Callable[[Run], Any]]:
    return {
        "replication-task-assessment-run-arn": lambda r: r.arn,
        "replication-task-arn": lambda r: r.task_arn,
        "replication-instance-arn": lambda r: "",
        "status": lambda r: r.status,
    }


def _latest(api: DmsApi) -> set[str]:
    last: dict[str, str] = {}
    for run in api.assessments.runs():
        last[run.task_arn] = run.arn
    return set(last.values())


def describe_runs(api: DmsApi, body: Body) -> Body:
    runs = filtered(api.assessments.runs(), body, _run_fields())
    page, marker = one_page(runs, body)
    latest = _latest(api)
    return marked({"ReplicationTaskAssessmentRuns": [r.out(r.arn in latest) for r in page]}, marker)


def describe_individual(api: DmsApi, body: Body) -> Body:
    fields = {k: v for k, v in _run_fields().items() if k != "status"}
    items = [i for r in filtered(api.assessments.runs(), body, fields) for i in r.individual()]
    page, marker = one_page(items, body)
    return marked({"ReplicationTaskIndividualAssessments": page}, marker)


def _one(api: DmsApi, body: Body, act: Callable[[str], Run | None]) -> Body:
    run_arn = required(body, "ReplicationTaskAssessmentRunArn")
    latest = _latest(api)
    run = act(run_arn)
    if run is None:
        raise not_found(f"assessment run {run_arn}")
    return {"ReplicationTaskAssessmentRun": run.out(run.arn in latest)}


def cancel_run(api: DmsApi, body: Body) -> Body:
    return _one(api, body, api.assessments.cancel)


def delete_run(api: DmsApi, body: Body) -> Body:
    out = _one(api, body, api.assessments.delete)
    out["ReplicationTaskAssessmentRun"]["Status"] = "deleting"
    return out


def start_legacy(api: DmsApi, body: Body) -> Body:
    """The older StartReplicationTaskAssessment: a run named after the task and time."""
    task = api.task(required(body, "ReplicationTaskArn"))
    _start(api, task.arn, f"{task.identifier}-{new_id()[:8].lower()}", body)
    return {"ReplicationTask": api._task_out(task)}


def describe_results(api: DmsApi, body: Body) -> Body:
    """The latest run of each task (or of one), with its checks as a JSON string."""
    wanted = body.get("ReplicationTaskArn")
    if wanted:
        api.task(wanted)
    runs = [r for r in api.assessments.runs() if r.arn in _latest(api)]
    runs = [r for r in runs if not wanted or r.task_arn == wanted]
    page, marker = one_page(runs, body)
    results = [
        {
            "ReplicationTaskIdentifier": r.task_identifier,
            "ReplicationTaskArn": r.task_arn,
            "ReplicationTaskLastAssessmentDate": r.created_at,
            "AssessmentStatus": r.status,
            "AssessmentResultsFile": f"{r.task_identifier}/{r.arn.rsplit(':', 1)[-1]}.json",
            "AssessmentResults": json.dumps(r.results()),
        }
        for r in page
    ]
    out: Body = {"ReplicationTaskAssessmentResults": results}
    if page and page[0].bucket:
        out["BucketName"] = page[0].bucket
    return marked(out, marker)


OPERATIONS: dict[str, Operation] = {
    "StartReplicationTaskAssessmentRun": start_run,
    "DescribeReplicationTaskAssessmentRuns": describe_runs,
    "DescribeReplicationTaskIndividualAssessments": describe_individual,
    "CancelReplicationTaskAssessmentRun": cancel_run,
    "DeleteReplicationTaskAssessmentRun": delete_run,
    "StartReplicationTaskAssessment": start_legacy,
    "DescribeReplicationTaskAssessmentResults": describe_results,
}
