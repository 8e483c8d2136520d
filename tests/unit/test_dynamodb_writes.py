"""BatchWriteItem without a server: ``UnprocessedItems`` are resent until none are left,
throttling is retried with back-off, other errors are EndpointErrors naming the call."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from opendms.endpoints.base import EndpointURL
from opendms.endpoints.dynamodb import tables as tables_module
from opendms.endpoints.dynamodb.client import DynamoClients
from opendms.endpoints.dynamodb.settings import DynamoSettings
from opendms.endpoints.dynamodb.tables import Tables, backoff
from opendms.errors import EndpointError

URL = EndpointURL.parse("dynamodb://?region=us-east-1&endpoint_url=http://127.0.0.1:1")


def _error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "slow down"}}, "BatchWriteItem")


class _Client:
    """Answers BatchWriteItem from a script: a dict (the response) or an exception."""

    def __init__(self, script: list[Any]) -> None:
        self.script = script
        self.calls: list[dict[str, Any]] = []

    def batch_write_item(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs["RequestItems"])
        answer = self.script.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return dict(answer)


def _tables(client: _Client, monkeypatch: pytest.MonkeyPatch) -> Tables:
    monkeypatch.setattr(tables_module, "backoff", lambda attempt: 0.0)
    clients = DynamoClients(URL)
    monkeypatch.setattr(clients, "dynamodb", lambda: client)
    return Tables(clients, DynamoSettings())


def _puts(*keys: str) -> list[dict[str, Any]]:
    return [{"PutRequest": {"Item": {"k": {"S": k}}}} for k in keys]


def test_unprocessed_items_are_resent_until_none_are_left(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = _Client(
        [
            {"UnprocessedItems": {"t": _puts("b", "c")}},
            _error("ProvisionedThroughputExceededException"),
            {"UnprocessedItems": {"t": _puts("c")}},
            {"UnprocessedItems": {}},
        ]
    )
    assert _tables(client, monkeypatch).batch_write("t", _puts("a", "b", "c")) == 3
    assert client.calls == [
        {"t": _puts("a", "b", "c")},
        {"t": _puts("b", "c")},
        {"t": _puts("b", "c")},
        {"t": _puts("c")},
    ]


def test_an_error_that_is_not_retryable_names_the_call(monkeypatch: pytest.MonkeyPatch) -> None:
    client = _Client([_error("ValidationException")])
    with pytest.raises(EndpointError, match="batch_write_item: ValidationException: slow down"):
        _tables(client, monkeypatch).batch_write("t", _puts("a"))
    assert len(client.calls) == 1


def test_throttling_that_never_ends_gives_up(monkeypatch: pytest.MonkeyPatch) -> None:
    client = _Client([_error("ThrottlingException")] * 8)
    with pytest.raises(EndpointError, match="ThrottlingException"):
        _tables(client, monkeypatch).batch_write("t", _puts("a"))
    assert len(client.calls) == 8


def test_backoff_is_exponential_with_full_jitter() -> None:
    waits = [backoff(5) for _ in range(200)]
    assert all(0 <= w <= 0.05 * 2**5 for w in waits)
    assert max(waits) > 0.8 and min(waits) < 0.8  # spread, not fixed
    assert all(backoff(30) <= 5.0 for _ in range(50))  # capped
