"""CDC apply to DynamoDB: each change one item call, in commit order per item.

* insert: ``PutItem`` of the new item (an existing item is replaced, as DMS does);
* update: ``PutItem`` of the whole after-image; when the source left values out
  (unchanged TOASTed columns) an ``UpdateItem`` that ``SET``s the changed attributes and
  ``REMOVE``s those that became NULL. An update that changes the item's key deletes the
  old item and puts the new one (the old item's attributes the change did not carry are
  kept). Not idempotent: the call requires the item to exist, else
  ``ApplyErrorUpdatePolicy`` decides (``INSERT_RECORD`` puts it);
* delete: ``DeleteItem``; a missing item follows ``ApplyErrorDeletePolicy``;
* truncate: every item deleted by key (scan-and-delete).

A key is computed from the change's old row when it carries the key's columns, else from
the after-image (an update cannot then move an item whose key is made of non-key source
columns: give such tables REPLICA IDENTITY FULL or a key of primary-key columns). A delete
whose old row lacks the key's columns finds its item by a Scan for the old row's values
(one warning per table); one without any old values is reported and skipped.

An object mapping's ``condition-expression`` with ``apply-during-cdc`` goes on every call
of its table; a false condition skips the change and reports it (``on_error``).

Items are written by ``ParallelApplyThreads`` threads (ApplyOptions.threads): the
changes of one item stay in order on one thread; a truncate or a key change waits for
everything before it. After the batch, the checkpoint is an item of the control table
``<table_prefix>awsdms_opendms_checkpoints`` (key ``task_name``). A crash repeats at
most the last batch, which replays in order to the same items.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING, Any, cast

from opendms.changes import UNCHANGED, ApplyPlan, Change, Op, Transaction
from opendms.endpoints.apply.policy import ApplyErrorPolicy, error_policies, log_error, op_name
from opendms.endpoints.dynamodb.codec import CodecError
from opendms.endpoints.dynamodb.items import Item, ItemShape
from opendms.endpoints.dynamodb.items import KeyAttribute as Key
from opendms.endpoints.dynamodb.target import DynamoTarget, key_text
from opendms.endpoints.dynamodb.writes import (
    Row,
    Write,
    condition_args,
    in_order,
    item_exists,
    merged,
    path_expr,
    row_label,
    target_row,
)
from opendms.errors import TaskError

if TYPE_CHECKING:
    from opendms.endpoints.base import Target
    from opendms.endpoints.engine import ApplyOptions

__all__ = ["CHECKPOINTS", "DynamoApplier", "open_applier"]

log = logging.getLogger("opendms.dynamodb")

CHECKPOINTS = "awsdms_opendms_checkpoints"
"""The control table of CDC checkpoints (after the endpoint's ``table_prefix``)."""
_TASK = "task_name"

Error = tuple[int, str, Op, str, str]  # the change's place in the batch, then OnError's


def open_applier(
    target: Target, task: str, plans: list[ApplyPlan], opts: ApplyOptions
) -> DynamoApplier:
    return DynamoApplier(cast("DynamoTarget", target), task, plans, opts)


class DynamoApplier:
    """Applies changes to the items of a DynamoDB endpoint's tables (module docstring)."""

    def __init__(
        self, target: DynamoTarget, task: str, plans: list[ApplyPlan], opts: ApplyOptions
    ) -> None:
        self.target, self.task, self.tables = target, task, target.tables
        self.plans = {(p.source.schema, p.source.name): p for p in plans}
        self.policies = error_policies(opts.policies)
        self.on_error = opts.on_error if opts.on_error is not None else log_error
        self.threads, self.buffer = max(opts.threads, 1), max(opts.buffer, 1)
        self.control = f"{target.prefix}{CHECKPOINTS}"
        self.suspended: set[str] = set()
        self._scanning: set[str] = set()  # tables whose deletes were told to scan
        self.idempotent = False
        self._errors: list[Error] = []
        self._lock = threading.Lock()
        self._control_ready = False
        self.pool = ThreadPoolExecutor(self.threads, "ddb-apply")

    # -- checkpoint ---------------------------------------------------------------

    def _ensure_control(self) -> None:
        if not self._control_ready:
            if self.tables.describe(self.control) is None:
                self.tables.create(self.control, (Key(_TASK, "S"),))
            self._control_ready = True

    def read_checkpoint(self) -> str | None:
        self._ensure_control()
        found = self.tables.call(
            "get_item", TableName=self.control, Key={_TASK: {"S": self.task}}, ConsistentRead=True
        ).get("Item")
        return str(found["position"]["S"]) if found else None

    def write_checkpoint(self, position: str) -> None:
        self._ensure_control()
        item = {_TASK: {"S": self.task}, "position": {"S": position}}
        self.tables.call("put_item", TableName=self.control, Item=item)

    # -- Applier ------------------------------------------------------------------

    def apply(self, batch: list[Transaction], position: str, idempotent: bool) -> int:
        self.idempotent, self._errors = idempotent, []
        groups: dict[str, list[Write]] = {}
        count = 0
        for change in (c for txn in batch for c in txn.changes if c.op is not Op.DDL):
            plan = self.plans.get((change.schema, change.table))
            if plan is None or plan.label in self.suspended:
                continue
            count += 1
            write = self._write(plan, change, count)
            if write is None:
                continue
            if write.op is Op.TRUNCATE or write.old_key is not None or write.partition:
                self._run(groups)  # everything before it first
                groups = {}
                write.run(write)
            else:
                groups.setdefault(f"{write.name}\0{key_text(write.key)}", []).append(write)
        self._run(groups)
        self.write_checkpoint(position)
        for _, table, op, key, reason in sorted(self._errors, key=lambda e: e[0]):
            self.on_error(table, op, key, reason)
        return count

    def schema_changed(self, plan: ApplyPlan) -> None:
        known = (plan.source.schema, plan.source.name) in self.plans
        self.plans[(plan.source.schema, plan.source.name)] = plan
        if not known:  # a table captured from now on: it needs its DynamoDB table
            from opendms.endpoints.base import PrepMode

            self.target.prepare(plan.target, PrepMode.DO_NOTHING)

    def table_dropped(self, schema: str, table: str) -> None:
        self.plans.pop((schema, table), None)

    def batch_hint(self) -> tuple[float, int] | None:
        return None

    def must_flush_at(self) -> str | None:
        return None

    def close(self) -> None:
        self.pool.shutdown()

    # -- running ------------------------------------------------------------------

    def _run(self, groups: dict[str, list[Write]]) -> None:
        """Each item's writes in order; items in parallel on the pool, in waves of at
        most ParallelApplyThreads x ParallelApplyBufferSize writes (an item's writes
        are never split, so they stay in order)."""
        limit, size = self.threads * self.buffer, 0
        wave: list[list[Write]] = []
        for writes in groups.values():
            if wave and size + len(writes) > limit:
                self._wave(wave)
                wave, size = [], 0
            wave.append(writes)
            size += len(writes)
        if wave:
            self._wave(wave)

    def _wave(self, groups: list[list[Write]]) -> None:
        calls = [self.pool.submit(in_order, writes) for writes in groups]
        for call in calls:
            call.result()

    def _report(self, write: Write, reason: str) -> None:
        with self._lock:
            self._errors.append((write.seq, write.table, write.op, write.label, reason))

    # -- building writes ------------------------------------------------------------

    def _write(self, plan: ApplyPlan, change: Change, seq: int) -> Write | None:
        shape = self.target.shape(plan.target)
        rule = shape.rule
        condition = (
            rule.condition if rule and rule.condition and rule.condition.during_cdc else None
        )
        name = self.target.name(plan.target)
        if change.op is Op.TRUNCATE:
            return Write(plan.label, change.op, "", self._truncate, name)
        before = target_row(plan, change.before())
        label = row_label(change.before()) if change.op is not Op.INSERT else ""
        write = Write(
            plan.label, change.op, label, self._put, name, condition=condition, shape=shape, seq=seq
        )
        try:
            return self._fill(write, shape, plan, change, before)
        except CodecError as exc:
            self._report(write, f"column {exc.column}: {exc}" if exc.column else str(exc))
            return None

    def _fill(
        self, write: Write, shape: ItemShape, plan: ApplyPlan, change: Change, before: Row
    ) -> Write | None:
        old_key = shape.key_from(before, UNCHANGED)
        if old_key is None and before:
            write.before = before
            write.partition = shape.key_from(before, UNCHANGED, parts=1)
        if change.op is Op.DELETE:
            return self._deleting(write, shape, old_key)
        after = target_row(plan, dict(zip(change.columns, change.values, strict=True)))
        write.label = write.label or row_label(
            {k: v for k, v in after.items() if k in plan.target.primary_key}
        )
        write.key = shape.key_from(after, UNCHANGED) or old_key or {}
        if not write.key:
            raise CodecError("the change does not carry the key's columns")
        if any(v is UNCHANGED for v in after.values()):
            write.sets, write.removes = shape.changes(after, UNCHANGED)
            write.run = self._update
        else:
            write.item = shape.item(after)
        if change.op is Op.UPDATE:
            self._updating(write, old_key)
        return write

    def _deleting(self, write: Write, shape: ItemShape, old_key: Item | None) -> Write | None:
        if old_key is None and write.partition is None:
            needs = ", ".join(sorted(shape.key_sources()))
            if not write.before:
                self._report(write, f"the old row lacks the key's columns ({needs})")
                return None
            self._warn_scan(write, needs)
        write.key = old_key or {}
        write.run = self._delete if old_key else self._delete_found
        return write

    def _updating(self, write: Write, old_key: Item | None) -> None:
        """How an update runs: a key change moves the item; an old row without the
        key's columns finds its item first; else the after-image or UpdateItem."""
        if write.partition is not None:
            write.run = self._update_found
        elif old_key is not None and old_key != write.key:
            write.old_key, write.run = old_key, self._move
        elif write.item is not None:
            write.run = self._put_existing

    # -- item calls (worker threads) -----------------------------------------------------

    def _put(self, write: Write) -> None:
        args = {"TableName": write.name, "Item": write.item}
        if not self.tables.conditional("put_item", **args, **condition_args(write.condition)):
            self._report(write, "its condition-expression is false")

    def _put_existing(self, write: Write) -> None:
        """An update as the whole after-image; the item must exist unless idempotent."""
        if self.idempotent:
            self._put(write)
            return
        exists = item_exists(write.key)
        args = {"TableName": write.name, "Item": write.item}
        if self.tables.conditional("put_item", **args, **condition_args(write.condition, exists)):
            return
        self._refused(write)

    def _update(self, write: Write) -> None:
        """An update that leaves some attributes as they are (UpdateItem)."""
        names: dict[str, str] = {}
        values: dict[str, Any] = {}
        parts = [path_expr(p, names) + f" = :v{i}" for i, p in enumerate(write.sets)]
        values.update({f":v{i}": v for i, v in enumerate(write.sets.values())})
        expr = ("SET " + ", ".join(parts)) if parts else ""
        if write.removes:
            expr += " REMOVE " + ", ".join(path_expr(p, names) for p in write.removes)
        if not expr:
            return
        cond = condition_args(write.condition, None if self.idempotent else item_exists(write.key))
        names.update(cond.pop("ExpressionAttributeNames", {}))
        values.update(cond.pop("ExpressionAttributeValues", {}))
        args: dict[str, Any] = {
            "TableName": write.name,
            "Key": write.key,
            "UpdateExpression": expr.strip(),
        }
        args["ExpressionAttributeNames"] = names
        if values:
            args["ExpressionAttributeValues"] = values
        if not self.tables.conditional("update_item", **args, **cond):
            self._refused(write)

    def _refused(self, write: Write) -> None:
        """An update's condition failed: the user's condition, or no item to update."""
        found = self.tables.call(
            "get_item", TableName=write.name, Key=write.key, ConsistentRead=True
        )
        if found.get("Item"):
            self._report(write, "its condition-expression is false")
            return
        self._policy(write, "update", "no item has its key")

    def _move(self, write: Write) -> None:
        """A key change: delete the old item and put the new one (with the old item's
        attributes the change did not carry)."""
        assert write.old_key is not None and write.shape is not None
        args = {"TableName": write.name, "Key": write.old_key, "ReturnValues": "ALL_OLD"}
        old = self.tables.call("delete_item", **args).get("Attributes")
        if not old and not self.idempotent and write.item is None:
            self._policy(write, "update", "no item has its old key")
            return
        item = dict(old or {})
        if write.item is not None:
            item = {**{k: v for k, v in item.items() if k in write.shape.key_names}, **write.item}
        else:
            item.update(merged(item, write))
        item.update(write.key)
        self._put(replace(write, item=item, old_key=None))

    def _delete(self, write: Write) -> None:
        args: dict[str, Any] = {
            "TableName": write.name,
            "Key": write.key,
            "ReturnValues": "ALL_OLD",
        }
        if write.condition is not None:
            if not self.tables.conditional(
                "delete_item", **args, **condition_args(write.condition)
            ):
                self._report(write, "its condition-expression is false")
            return
        old = self.tables.call("delete_item", **args).get("Attributes")
        if (
            not old
            and not self.idempotent
            and self.policies["delete"] is not ApplyErrorPolicy.IGNORE_RECORD
        ):
            self._policy(write, "delete", "no item has its key")

    def _find(self, write: Write) -> Item | None:
        """The key of the one item that holds the values of ``write.before``: queried
        under ``write.partition``, else found by a Scan of the table (None: none, or
        several)."""
        assert write.before is not None and write.shape
        shape = write.shape
        if write.partition is not None:
            name, value = next(iter(write.partition.items()))
            items = self.tables.query(write.name, name, value)
        else:
            items = self.tables.scan(write.name)
        found = [item for item in items if shape.holds(item, write.before)]
        return shape.key_of(found[0]) if len(found) == 1 else None

    def _warn_scan(self, write: Write, needs: str) -> None:
        """Say once per table that its deletes find their items by a Scan."""
        if write.table not in self._scanning:
            self._scanning.add(write.table)
            log.warning(
                "table %s: a delete's old row lacks the DynamoDB key's columns (%s), so its "
                "item is found by a Scan of %s; for speed, have the source send whole old "
                "rows (PostgreSQL: ALTER TABLE ... REPLICA IDENTITY FULL)",
                write.table,
                needs,
                write.name,
            )

    def _delete_found(self, write: Write) -> None:
        key = self._find(write)
        if key is None:
            if not self.idempotent:
                self._policy(write, "delete", "no item holds its old row")
            return
        write.key = key
        self._delete(write)

    def _update_found(self, write: Write) -> None:
        key = self._find(write)
        if key is not None and key != write.key:
            write.old_key = key
            self._move(write)
        elif write.item is not None:
            self._put_existing(write)
        else:
            self._update(write)

    def _truncate(self, write: Write) -> None:
        count = self.tables.truncate(write.name)
        log.info("table %s: truncated (%d items deleted from %s)", write.table, count, write.name)

    def _policy(self, write: Write, kind: str, message: str) -> None:
        policy = self.policies[kind]
        if policy is ApplyErrorPolicy.INSERT_RECORD and write.item is not None:
            self._put(write)
        elif policy is ApplyErrorPolicy.SUSPEND_TABLE:
            with self._lock:
                self.suspended.add(write.table)
            self._report(write, f"table suspended: {message} (SUSPEND_TABLE)")
        elif policy is ApplyErrorPolicy.STOP_TASK:
            raise TaskError(
                f"table {write.table}: {op_name(write.op)} of row {write.label} failed: {message} "
                f"(Apply{kind.capitalize()}ErrorPolicy STOP_TASK)"
            )
        elif policy is not ApplyErrorPolicy.IGNORE_RECORD:
            self._report(write, message)
