"""(being built: issue 13)"""

from __future__ import annotations

from typing import TYPE_CHECKING

from opendms.errors import EndpointError

if TYPE_CHECKING:
    from opendms.changes import ChangeSource
    from opendms.endpoints.base import EndpointURL
    from opendms.endpoints.dynamodb.settings import DynamoSettings


def open_change_source(url: EndpointURL, task: str, settings: DynamoSettings) -> ChangeSource:
    raise EndpointError(str(url), "not built yet")
