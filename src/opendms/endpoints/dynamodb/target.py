"""(being built: issue 13)"""

from __future__ import annotations

from typing import TYPE_CHECKING

from opendms.errors import EndpointError

if TYPE_CHECKING:
    from opendms.endpoints.base import EndpointURL, Target
    from opendms.endpoints.dynamodb.settings import DynamoSettings


def open_target(url: EndpointURL, settings: DynamoSettings) -> Target:
    raise EndpointError(str(url), "not built yet")
