"""The settings of a ``dynamodb://`` endpoint and how its URL names a service."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from opendms.endpoints.settings import EndpointSettings, Whole

__all__ = ["DynamoSettings"]


class DynamoSettings(EndpointSettings):
    """``BillingMode``: of the tables opendms creates (on-demand by default; DMS
    creates provisioned tables of 200 RCU/WCU, ``PROVISIONED`` does that);
    ``ReadCapacityUnits``/``WriteCapacityUnits``: for ``PROVISIONED``;
    ``ScanSegments``: parallel ``Scan`` segments of a source table's full load;
    ``BatchWriteThreads``: ``BatchWriteItem`` calls a full-load writer keeps in flight
    (each of a table's ``ParallelLoadThreads`` writers);
    ``ScanPageLimit``: items per ``Scan`` page of a source (0: DynamoDB's 1 MB pages);
    ``SampleItems``: items a source samples (first ``Scan`` pages) to infer columns;
    ``StreamStartPosition``: where CDC from a table's stream starts when the task has no
    checkpoint (``TRIM_HORIZON``: the oldest record kept, ``LATEST``: from now);
    ``StreamViewType``: tables a target creates get a DynamoDB stream of this view
    (``NEW_AND_OLD_IMAGES``, ``NEW_IMAGE``, ``OLD_IMAGE``, ``KEYS_ONLY``), so another task
    or a consumer can follow them; empty (the default): no stream."""

    engine = "DynamoDB"
    not_applied: ClassVar[frozenset[str]] = frozenset({"ServiceAccessRoleArn"})
    url_params: ClassVar[frozenset[str]] = frozenset(
        {
            "region",
            "endpoint_url",
            "profile",
            "aws_access_key_id",
            "aws_secret_access_key",
            "table_prefix",
        }
    )

    BillingMode: Literal["PAY_PER_REQUEST", "PROVISIONED"] = "PAY_PER_REQUEST"
    ReadCapacityUnits: Whole = 200
    WriteCapacityUnits: Whole = 200
    ScanSegments: Whole = 4
    BatchWriteThreads: Annotated[Whole, Field(ge=1, le=64)] = 4
    ScanPageLimit: Whole = 0
    SampleItems: Whole = 1000
    StreamStartPosition: Literal["TRIM_HORIZON", "LATEST"] = "TRIM_HORIZON"
    StreamViewType: Literal["", "NEW_AND_OLD_IMAGES", "NEW_IMAGE", "OLD_IMAGE", "KEYS_ONLY"] = ""
