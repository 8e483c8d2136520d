"""The DynamoDB engine object (``ENGINE``): what a ``dynamodb://`` endpoint can do."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opendms.endpoints.dynamodb.client import DynamoClients, describe_error
from opendms.endpoints.dynamodb.settings import DynamoSettings
from opendms.endpoints.engine import Capabilities, Engine
from opendms.errors import EndpointError
from opendms.model import Kind

if TYPE_CHECKING:
    from opendms.changes import Applier, ApplyPlan, ChangeSource
    from opendms.endpoints.base import EndpointURL, Source, Target
    from opendms.endpoints.engine import ApplyOptions
    from opendms.endpoints.query.sources import QuerySource, SourceOptions
    from opendms.endpoints.readback import TableRows
    from opendms.model import ColumnType

__all__ = ["ENGINE", "DynamoEngine"]

_LOSSY = {
    Kind.JSON: "JSON becomes a DynamoDB document: its numbers and key order are DynamoDB's",
}
"""Canonical kinds whose values do not read back in the same form."""


class DynamoEngine(Engine):
    """DynamoDB tables (one endpoint: one account and region, or one compatible server)."""

    name = "dynamodb"
    title = "DynamoDB"
    schemes = ("dynamodb",)
    capabilities = Capabilities(
        source=True,
        cdc_source=True,
        target=True,
        cdc_target=True,
        read_back=True,
        parallel_writers=True,
        parallel_apply=True,
    )
    settings = DynamoSettings

    # Each role lives in its own module (target.py and apply.py: the target; source.py
    # and changesource.py: the source), imported when used.

    def open_source(self, url: EndpointURL, settings: dict[str, Any]) -> Source:
        from opendms.endpoints.dynamodb.source import open_source

        return open_source(url, DynamoSettings.resolve(url, settings))

    def change_source(self, url: EndpointURL, task: str, settings: dict[str, Any]) -> ChangeSource:
        from opendms.endpoints.dynamodb.changesource import open_change_source

        return open_change_source(url, task, DynamoSettings.resolve(url, settings))

    def open_target(
        self, url: EndpointURL, settings: dict[str, Any], task: str | None = None
    ) -> Target:
        from opendms.endpoints.dynamodb.target import open_target

        return open_target(url, DynamoSettings.resolve(url, settings))

    def applier(
        self, target: Target, task: str, plans: list[ApplyPlan], opts: ApplyOptions
    ) -> Applier:
        from opendms.endpoints.dynamodb.apply import open_applier

        return open_applier(target, task, plans, opts)

    def table_rows(
        self, url: EndpointURL, settings: dict[str, Any], task: str | None = None
    ) -> TableRows:
        from opendms.endpoints.dynamodb.readback import DynamoRows

        return DynamoRows(url, DynamoSettings.resolve(url, settings))

    def query_source(self, url: EndpointURL, options: SourceOptions) -> QuerySource:
        from opendms.endpoints.dynamodb.query import DynamoQuerySource

        return DynamoQuerySource(url, DynamoSettings.resolve(url, {}))

    def lossy(self, ctype: ColumnType) -> str | None:
        return _LOSSY.get(ctype.kind)

    def table_identity(self, url: EndpointURL, schema: str, name: str) -> tuple[str, ...]:
        """A DynamoDB table is named without a schema (``table_prefix`` + name)."""
        return (url.query.get("table_prefix", "") + name,)

    def check(self, url: EndpointURL, settings: dict[str, Any]) -> str:
        DynamoSettings.resolve(url, settings)
        clients = DynamoClients(url)
        try:
            names = clients.dynamodb().list_tables(Limit=100).get("TableNames", [])
        except EndpointError:
            raise
        except Exception as exc:  # botocore: connection refused, credentials, access denied
            raise EndpointError(str(url), describe_error(exc)) from None
        more = "+" if len(names) == 100 else ""
        return f"DynamoDB at {clients.where} ({len(names)}{more} tables)"

    def same_database(self, a: EndpointURL, b: EndpointURL) -> bool:
        keys = ("endpoint_url", "region")
        return all(a.query.get(k, "") == b.query.get(k, "") for k in keys)


ENGINE = DynamoEngine()
