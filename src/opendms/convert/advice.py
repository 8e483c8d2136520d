"""The report's remediation texts that list what every engine offers instead (each
engine's part comes from its :class:`~opendms.endpoints.ddldialect.DdlDialect`)."""

from __future__ import annotations

from opendms.convert.catalog import dialects

__all__ = ["code_advice", "search_advice", "sequence_advice"]


def sequence_advice() -> str:
    """What to do about a standalone sequence on a target without sequences."""
    others = [d for d in dialects() if not d.sequences]
    kinds = "/".join(d.identity_name for d in others)
    notes = "; ".join(d.sequence_note for d in others if d.sequence_note)
    also = f" ({notes})" if notes else ""
    return f"Use an {kinds} column or a counter table{also}, and change the code calling nextval()."


def search_advice() -> str:
    """What to do about an index with an access method the target lacks (GiST, FULLTEXT...)."""
    hints = "; ".join(f"{d.title}: {d.search_index}" for d in dialects() if d.search_index)
    return f"Recreate it with the target's own search features ({hints}), or drop it."


def code_advice(kind: str) -> str:
    """What to do about a procedure, function or trigger (``kind``: the report's kind)."""
    if kind == "functions":
        languages = " or ".join(d.routine_language for d in dialects() if d.routine_language)
        return (
            f"Rewrite the function in the target's dialect ({languages}), "
            "or move its logic into the application."
        )
    if kind == "triggers":
        notes = ", ".join(d.trigger_advice for d in dialects() if d.trigger_advice)
        return f"Recreate the trigger on the target: {notes}."
    return (
        "Rewrite the procedure in the target's procedural language, "
        "or move its logic into the application."
    )
