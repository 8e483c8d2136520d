"""Row-level validation of a task's target against its source (DMS data validation)."""

from opendms.validate.compare import MISSING_SOURCE, MISSING_TARGET, RECORD_DIFF, Failure
from opendms.validate.runner import (
    TableValidation,
    ValidationResult,
    ValidationSettings,
    ValidationState,
    validate_task,
)

__all__ = [
    "MISSING_SOURCE",
    "MISSING_TARGET",
    "RECORD_DIFF",
    "Failure",
    "TableValidation",
    "ValidationResult",
    "ValidationSettings",
    "ValidationState",
    "validate_task",
]
