"""MySQL driver errors become one clear endpoint error; a connection that is gone is a
lost connection (ConnectError: retried as recoverable), whatever PyMySQL raised."""

from __future__ import annotations

import pytest

from opendms.endpoints.base import EndpointURL
from opendms.endpoints.mysql.conn import translate
from opendms.errors import ConflictError, ConnectError, EndpointError

URL = EndpointURL.parse("mysql://user:s3cret@db.example:3307/shop")


class InterfaceError(Exception):
    """Named as PyMySQL's: translate goes by the class name."""


@pytest.mark.parametrize(
    "exc",
    [
        AttributeError("'NoneType' object has no attribute 'sendall'"),
        AttributeError("'NoneType' object has no attribute 'settimeout'"),
        InterfaceError(0, ""),
        BrokenPipeError("Broken pipe"),
        OSError("Lost connection to MySQL server during query"),
    ],
)
def test_a_connection_that_is_gone_is_lost(exc: Exception) -> None:
    error = translate(exc, URL)
    assert isinstance(error, ConnectError)
    assert "db.example:3307 lost" in str(error)


def test_another_attribute_error_is_not_a_lost_connection() -> None:
    error = translate(AttributeError("'Cursor' object has no attribute 'foo'"), URL)
    assert type(error) is EndpointError
    assert "s3cret" not in str(error)


class OperationalError(Exception):
    """Shaped as PyMySQL's: (errno, message)."""


@pytest.mark.parametrize(
    "code",
    [1205, 1213],  # lock wait timeout exceeded, deadlock found
)
def test_a_lock_conflict_is_retried(code: int) -> None:
    error = translate(OperationalError(code, "Lock wait timeout exceeded"), URL)
    assert isinstance(error, ConflictError)
    assert error.retryable and f"MySQL error {code}" in str(error)


def test_postgres_conflicts_are_retried() -> None:
    from opendms.endpoints.postgres.conn import translate as pg_translate

    class PgFailureError(Exception):
        sqlstate = ""

    pg_url = EndpointURL.parse("postgresql://u:s3cret@db.example/shop")
    for state, retried in (("40P01", True), ("40001", True), ("55P03", True), ("42601", False)):
        exc = PgFailureError("deadlock detected")
        exc.sqlstate = state
        error = pg_translate(exc, pg_url)
        assert isinstance(error, ConflictError) is retried, state
        assert error.retryable is retried and "s3cret" not in str(error)
