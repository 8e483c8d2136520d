"""(being built: issue 13)"""

from __future__ import annotations

from typing import TYPE_CHECKING

from opendms.errors import EndpointError

if TYPE_CHECKING:
    from opendms.changes import Applier, ApplyPlan
    from opendms.endpoints.base import Target
    from opendms.endpoints.engine import ApplyOptions


def open_applier(target: Target, task: str, plans: list[ApplyPlan], opts: ApplyOptions) -> Applier:
    raise EndpointError(str(target.url), "not built yet")
