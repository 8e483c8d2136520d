"""AWS DMS table mappings: parse, validate and apply them.

The JSON users paste from DMS is accepted verbatim::

    mappings = parse_table_mappings(text)
    tables = mappings.select(source.list_tables())
    plan = mappings.plan(source.describe(ref))
    batch = evaluate_outputs(source_batch, plan)

See :mod:`opendms.mapping.parse` (what is accepted), :mod:`opendms.mapping.plan`
(how transformations apply) and :mod:`opendms.mapping.expressions`
(``add-column`` expressions).
"""

from opendms.mapping._cast import cast_exact
from opendms.mapping.datatypes import parse_data_type
from opendms.mapping.expressions import (
    evaluate_outputs,
    referenced_columns,
    validate_expression,
)
from opendms.mapping.mappings import TableMappings, parse_table_mappings
from opendms.mapping.plan import OutputColumn, TablePlan
from opendms.mapping.rules import (
    LobSettings,
    ParallelLoad,
    SelectionRule,
    TableSettingsRule,
    TransformationRule,
)

__all__ = [
    "LobSettings",
    "OutputColumn",
    "ParallelLoad",
    "SelectionRule",
    "TableMappings",
    "TablePlan",
    "TableSettingsRule",
    "TransformationRule",
    "cast_exact",
    "evaluate_outputs",
    "parse_data_type",
    "parse_table_mappings",
    "referenced_columns",
    "validate_expression",
]
