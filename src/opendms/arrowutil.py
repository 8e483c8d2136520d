"""Small vectorised Arrow helpers shared by endpoints."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc


def parse_time(text: pa.Array) -> pa.Array:
    """``HH:MM:SS[.ffffff]`` strings to time64[us] (Arrow has no direct cast)."""
    stamped = pc.binary_join_element_wise("1970-01-01 ", text, "")
    return pc.cast(pc.cast(stamped, pa.timestamp("us")), pa.time64("us"))


def parse_temporal(text: pa.Array, target: pa.DataType) -> pa.Array:
    """ISO date / time / timestamp strings (``T`` or space separated) to ``target``."""
    if pa.types.is_time(target):
        return parse_time(text)
    return pc.cast(pc.replace_substring(text, "T", " ", max_replacements=1), target)
