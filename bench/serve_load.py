"""Load on ``opendms serve``: many concurrent clients on loopback against the DMS API's
Describe* calls, the REST API and the console pages while two CDC tasks stream.

    python bench/serve_load.py [--clients 50] [--seconds 60]

The server runs in its own process; two SQLite sources get rows written all along, each
streamed to a local lake by its own task. ``wrk`` (Debian's package) drives the load:
each request is one of DescribeReplicationTasks, DescribeTableStatistics,
DescribeEndpoints (``POST /``), ``GET /api/v1/tasks`` (bearer token) and
``GET /console/tasks.json`` and ``/console/tasks`` (session cookie). The anchor is the
same load on ``GET /healthz`` (the server's cheapest answer). Printed: requests, errors
(non-2xx and socket errors), p50 and p99 latency, the p99 ratio to the anchor, the
200 ms goal; then that both tasks kept up (their lakes hold every written row).
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import BenchError, smoke_option, smoke_sizes

GOAL_MS = 200.0
MAPPINGS = json.dumps(
    {
        "rules": [
            {
                "rule-type": "selection",
                "rule-id": "1",
                "rule-name": "all",
                "object-locator": {"schema-name": "%", "table-name": "%"},
                "rule-action": "include",
            }
        ]
    }
)
LUA = """
local n = 0
local requests = {}
function init(args)
  local token, cookie, task = args[1], args[2], args[3]
  local dms = function(op, body)
    return wrk.format("POST", "/", {["Content-Type"] = "application/x-amz-json-1.1",
      ["X-Amz-Target"] = "AmazonDMSv20160101." .. op}, body)
  end
  requests = {
    dms("DescribeReplicationTasks", "{}"),
    dms("DescribeTableStatistics", '{"ReplicationTaskArn": "' .. task .. '"}'),
    dms("DescribeEndpoints", "{}"),
    wrk.format("GET", "/api/v1/tasks", {["Authorization"] = "Bearer " .. token}),
    wrk.format("GET", "/console/tasks.json", {["Cookie"] = cookie}),
    wrk.format("GET", "/console/tasks", {["Cookie"] = cookie}),
  }
end
function request()
  n = n + 1
  return requests[(n % #requests) + 1]
end
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``opendms serve`` in a child process over ``state``."""

    def __init__(self, state: Path) -> None:
        self.state, self.port = state, _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (state.parent / "serve.log").open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "opendms.cli.main", "serve", "--port", str(self.port),
             "--state", str(state)],
            stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while not self._up():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"opendms serve did not start: see {self.log.name}")
            time.sleep(0.2)

    def _up(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        self.log.close()


def _client(url: str) -> Any:
    import boto3

    return boto3.session.Session().client(
        "dms",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="y",
    )


class Writer(threading.Thread):
    """Inserts rows into a SQLite source, ``rate`` per second, until stopped."""

    def __init__(self, path: Path, rate: int) -> None:
        super().__init__(daemon=True)
        self.path, self.rate, self.rows = path, rate, 0
        self.stop = threading.Event()
        with sqlite3.connect(path) as conn:
            conn.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, body TEXT)")
            conn.execute("INSERT INTO events VALUES (0, 'first')")
        self.rows = 1

    def run(self) -> None:
        conn = sqlite3.connect(self.path)
        while not self.stop.wait(0.1):
            batch = [(self.rows + i, f"row {self.rows + i}") for i in range(self.rate // 10)]
            with conn:
                conn.executemany("INSERT INTO events VALUES (?, ?)", batch)
            self.rows += len(batch)
        conn.close()


def _task(dms: Any, folder: Path, name: str) -> str:
    src = dms.create_endpoint(
        EndpointIdentifier=f"{name}-src",
        EndpointType="source",
        EngineName="sqlite",
        DatabaseName=str(folder / f"{name}.db"),
    )["Endpoint"]["EndpointArn"]
    dst = dms.create_endpoint(
        EndpointIdentifier=f"{name}-lake",
        EndpointType="target",
        EngineName="file",
        DatabaseName=str(folder / f"{name}-lake"),
        ExtraConnectionAttributes="DataFormat=parquet;CdcMaxBatchInterval=1",
    )["Endpoint"]["EndpointArn"]
    arn = dms.create_replication_task(
        ReplicationTaskIdentifier=name,
        SourceEndpointArn=src,
        TargetEndpointArn=dst,
        ReplicationInstanceArn="r",
        MigrationType="full-load-and-cdc",
        TableMappings=MAPPINGS,
    )["ReplicationTask"]["ReplicationTaskArn"]
    dms.start_replication_task(ReplicationTaskArn=arn, StartReplicationTaskType="start-replication")
    return str(arn)


def _applied(dms: Any, arn: str) -> int:
    tables = dms.describe_table_statistics(ReplicationTaskArn=arn)["TableStatistics"]
    return sum(int(t["FullLoadRows"]) + int(t["Inserts"]) for t in tables)


def _wait(what: str, check: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise BenchError(f"timed out waiting for {what}")
        time.sleep(0.5)


def _credentials(state: Path) -> tuple[str, str]:
    """The server's bearer token and a console session cookie (read from its state)."""
    from opendms.server.auth import (
        SESSION_COOKIE,
        load_or_create_key,
        load_or_create_token,
        make_session,
    )

    token, _ = load_or_create_token(state)
    return token, f"{SESSION_COOKIE}={make_session(load_or_create_key(state))}"


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip()).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def wrk(
    url: str, args: argparse.Namespace, script: Path | None, extra: list[str]
) -> dict[str, float]:
    """Run wrk; its requests, errors, p50 and p99 (ms)."""
    cmd = ["wrk", "-t2", f"-c{args.clients}", f"-d{args.seconds}s", "--latency", "--timeout", "5s"]
    if script is not None:
        cmd += ["-s", str(script)]
    done = subprocess.run([*cmd, url, *(["--", *extra] if extra else [])],
                          capture_output=True, text=True, timeout=args.seconds + 60)  # fmt: skip
    out = done.stdout
    if done.returncode != 0 or "requests in" not in out:
        raise BenchError(f"wrk failed: {done.stderr or out}")
    found = re.search(r"(\d+) requests in", out)
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    if socket_errors:
        errors += sum(int(n) for n in socket_errors.groups())
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    if not (found and p50 and p99):
        raise BenchError(f"cannot read wrk's output:\n{out}")
    return {
        "requests": float(found.group(1)),
        "errors": float(errors),
        "p50": _ms(p50.group(1)),
        "p99": _ms(p99.group(1)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50, help="concurrent connections")
    parser.add_argument("--seconds", type=int, default=60, help="length of each load run")
    parser.add_argument("--rate", type=int, default=200, help="rows/s written per source")
    smoke_option(parser)
    args = parser.parse_args()
    smoke_sizes(args, clients=4, seconds=2, rate=50)
    if subprocess.run(["which", "wrk"], capture_output=True).returncode != 0:
        raise BenchError("wrk is not installed (Debian: apt-get install wrk)")
    with tempfile.TemporaryDirectory(prefix="opendms-serve-load-") as tmp:
        run(Path(tmp), args)


def run(folder: Path, args: argparse.Namespace) -> None:
    server = Server(folder / "state")
    writers = [Writer(folder / f"t{n}.db", args.rate) for n in (1, 2)]
    dms = _client(server.url)
    arns: list[str] = []
    try:
        arns += [_task(dms, folder, f"t{n}") for n in (1, 2)]
        for w in writers:
            w.start()
        _wait("both tasks to stream", lambda: all(_applied(dms, a) > 1 for a in arns), 120)
        token, cookie = _credentials(folder / "state")
        script = folder / "load.lua"
        script.write_text(LUA)
        anchor = wrk(server.url + "/healthz", args, None, [])
        load = wrk(server.url, args, script, [token, cookie, arns[0]])
        for w in writers:
            w.stop.set()
            w.join()
        _wait(
            "the tasks to catch up",
            lambda: [_applied(dms, a) for a in arns] == [w.rows for w in writers],
            120,
        )
        _report(args, anchor, load, [w.rows for w in writers])
    finally:
        for w in writers:
            w.stop.set()
        _stop_tasks(dms, arns)  # tasks outlive the server process: stop them first
        server.close()


def _stop_tasks(dms: Any, arns: list[str]) -> None:
    for arn in arns:
        try:
            dms.stop_replication_task(ReplicationTaskArn=arn)
        except Exception as exc:  # already stopped, or the server is gone: say so
            print(f"stopping {arn}: {exc}", file=sys.stderr)
    for arn in arns:
        dms.get_waiter("replication_task_stopped").wait(
            Filters=[{"Name": "replication-task-arn", "Values": [arn]}],
            WaiterConfig={"Delay": 0.5, "MaxAttempts": 120},
        )


def _report(
    args: argparse.Namespace, anchor: dict[str, float], load: dict[str, float], rows: list[int]
) -> None:
    print(f"load: {args.clients} clients, {args.seconds} s, loopback, two CDC tasks streaming")
    for name, r in (("GET /healthz (anchor)", anchor), ("Describe*, REST, console", load)):
        rate = r["requests"] / args.seconds
        print(
            f"{name:26} {int(r['requests']):>8,} requests  {rate:>8,.0f} req/s"
            f"  p50 {r['p50']:7.2f} ms  p99 {r['p99']:7.2f} ms  errors {int(r['errors'])}"
        )
    ratio = load["p99"] / anchor["p99"] if anchor["p99"] else float("inf")
    verdict = "met" if load["p99"] < GOAL_MS and load["errors"] == 0 else "NOT met"
    print(f"p99 vs anchor: {ratio:.2f}x; goal p99 < {GOAL_MS:.0f} ms with no error: {verdict}")
    print(f"tasks kept up: applied {rows[0]:,} and {rows[1]:,} rows, every row written")


if __name__ == "__main__":
    main()
