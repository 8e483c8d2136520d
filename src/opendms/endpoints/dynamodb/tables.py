"""DynamoDB tables of one endpoint: describe, create, delete (each waiting until DynamoDB
says it is done), empty by scan-and-delete, and the calls' errors as opendms errors.

Tables opendms creates use the endpoint's ``BillingMode`` (on-demand by default;
``PROVISIONED`` with ``ReadCapacityUnits``/``WriteCapacityUnits``, as DMS's 200/200)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from typing import Any

from opendms.endpoints.dynamodb.client import DynamoClients, describe_error, error_code
from opendms.endpoints.dynamodb.items import KeyAttribute
from opendms.endpoints.dynamodb.settings import DynamoSettings
from opendms.errors import EndpointError

__all__ = ["RETRYABLE", "Tables", "backoff"]

RETRYABLE = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "LimitExceededException",
    }
)
"""DynamoDB error codes that are retried (with back-off), beyond botocore's own retries."""
_FAILED = "ConditionalCheckFailedException"
WAIT_SECONDS = 300.0
BATCH_LIMIT = 25


def backoff(attempt: int, base: float = 0.05, cap: float = 5.0) -> float:
    """Seconds to wait before retry ``attempt`` (0, 1, ...): exponential, full jitter."""
    return random.uniform(0, min(cap, base * 2**attempt))


class Tables:
    """The tables of one DynamoDB endpoint."""

    def __init__(self, clients: DynamoClients, settings: DynamoSettings) -> None:
        self.clients, self.settings = clients, settings
        self.where = str(clients.url)

    def call(self, method: str, **kwargs: Any) -> Any:
        """One DynamoDB call; its errors as EndpointErrors naming the endpoint."""
        try:
            return self.raw(method, **kwargs)
        except Exception as exc:  # botocore ClientError / connection errors
            raise self.error(exc, method) from None

    def raw(self, method: str, **kwargs: Any) -> Any:
        """One DynamoDB call, retryable error codes retried with back-off; botocore's
        errors as they are."""
        fn: Callable[..., Any] = getattr(self.clients.dynamodb(), method)
        for attempt in range(8):
            try:
                return fn(**kwargs)
            except Exception as exc:
                if error_code(exc) not in RETRYABLE or attempt == 7:
                    raise
                time.sleep(backoff(attempt))
        raise AssertionError("unreachable")

    def conditional(self, method: str, **kwargs: Any) -> bool:
        """A call with a ``ConditionExpression``: False when the condition was false."""
        try:
            self.raw(method, **kwargs)
        except Exception as exc:
            if error_code(exc) == _FAILED:
                return False
            raise self.error(exc, method) from None
        return True

    def error(self, exc: BaseException, what: str) -> EndpointError:
        return EndpointError(self.where, f"{what}: {describe_error(exc)}")

    # -- describe / create / delete ------------------------------------------------

    def describe(self, name: str) -> dict[str, Any] | None:
        """The table's description, or None when it does not exist."""
        try:
            found: dict[str, Any] = self.clients.dynamodb().describe_table(TableName=name)["Table"]
        except Exception as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return None
            raise self.error(exc, f"DescribeTable {name}") from None
        return found

    def key_names(self, name: str) -> tuple[str, ...] | None:
        """The key attributes of table ``name`` (HASH first), None when it is missing."""
        found = self.describe(name)
        if found is None:
            return None
        schema = sorted(found["KeySchema"], key=lambda k: k["KeyType"] != "HASH")
        return tuple(k["AttributeName"] for k in schema)

    def create(self, name: str, key: tuple[KeyAttribute, ...]) -> None:
        """Create table ``name`` with ``key`` (partition, then sort) and wait until ACTIVE."""
        kinds = ("HASH", "RANGE")
        args: dict[str, Any] = {
            "TableName": name,
            "KeySchema": [
                {"AttributeName": k.name, "KeyType": t}
                for k, t in zip(key, kinds[: len(key)], strict=True)
            ],
            "AttributeDefinitions": [
                {"AttributeName": k.name, "AttributeType": k.type} for k in key
            ],
            "BillingMode": self.settings.BillingMode,
        }
        if self.settings.StreamViewType:
            args["StreamSpecification"] = {
                "StreamEnabled": True,
                "StreamViewType": self.settings.StreamViewType,
            }
        if self.settings.BillingMode == "PROVISIONED":
            args["ProvisionedThroughput"] = {
                "ReadCapacityUnits": self.settings.ReadCapacityUnits,
                "WriteCapacityUnits": self.settings.WriteCapacityUnits,
            }
        try:
            self.clients.dynamodb().create_table(**args)
        except Exception as exc:
            if error_code(exc) != "ResourceInUseException":  # created meanwhile
                raise self.error(exc, f"CreateTable {name}") from None
        self._wait(name, lambda d: d is not None and d.get("TableStatus") == "ACTIVE", "ACTIVE")

    def delete(self, name: str) -> None:
        """Delete table ``name`` (nothing when missing) and wait until it is gone."""
        try:
            self.clients.dynamodb().delete_table(TableName=name)
        except Exception as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return
            raise self.error(exc, f"DeleteTable {name}") from None
        self._wait(name, lambda d: d is None, "deleted")

    def _wait(self, name: str, done: Callable[[dict[str, Any] | None], bool], what: str) -> None:
        deadline = time.monotonic() + WAIT_SECONDS
        while not done(self.describe(name)):
            if time.monotonic() > deadline:
                raise EndpointError(
                    self.where, f"table {name} is not {what} after {WAIT_SECONDS:.0f} s"
                )
            time.sleep(0.1)

    # -- scanning and emptying --------------------------------------------------------

    def scan(self, name: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """Every item of table ``name`` (page by page, consistent reads)."""
        args: dict[str, Any] = {"TableName": name, "ConsistentRead": True, **kwargs}
        while True:
            page = self.call("scan", **args)
            yield from page.get("Items", [])
            last = page.get("LastEvaluatedKey")
            if not last:
                return
            args["ExclusiveStartKey"] = last

    def query(self, name: str, attribute: str, value: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """The items of table ``name`` whose partition key ``attribute`` is ``value``."""
        args: dict[str, Any] = {
            "TableName": name,
            "ConsistentRead": True,
            "KeyConditionExpression": "#p = :p",
            "ExpressionAttributeNames": {"#p": attribute},
            "ExpressionAttributeValues": {":p": value},
        }
        while True:
            page = self.call("query", **args)
            yield from page.get("Items", [])
            if not page.get("LastEvaluatedKey"):
                return
            args["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def truncate(self, name: str) -> int:
        """Delete every item of table ``name`` by key (BatchWriteItem); the count."""
        keys = self.key_names(name) or ()
        names = {f"#k{i}": k for i, k in enumerate(keys)}
        found = self.scan(
            name, ProjectionExpression=", ".join(names), ExpressionAttributeNames=names
        )
        count, chunk = 0, []
        for item in found:
            chunk.append({"DeleteRequest": {"Key": {k: item[k] for k in keys}}})
            if len(chunk) == BATCH_LIMIT:
                count += self.batch_write(name, chunk)
                chunk = []
        if chunk:
            count += self.batch_write(name, chunk)
        return count

    def batch_write(self, name: str, requests: list[dict[str, Any]]) -> int:
        """One BatchWriteItem of at most 25 requests, resending ``UnprocessedItems``
        with back-off until none are left; the number of requests."""
        pending: dict[str, Any] = {name: requests}
        for attempt in range(30):
            unprocessed = self.call("batch_write_item", RequestItems=pending).get(
                "UnprocessedItems"
            )
            if not unprocessed:
                return len(requests)
            pending = unprocessed
            time.sleep(backoff(attempt))
        raise EndpointError(
            self.where, f"BatchWriteItem {name}: items still unprocessed after 30 tries"
        )
