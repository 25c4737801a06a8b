"""Rules shared by every string match (headers, query parameters) of every policy kind."""

from __future__ import annotations

from mesh_operator.validation.regex import regex_problem
from mesh_operator.validation.violations import Collector


def validate_value_match(kind: str, value: str | None, c: Collector) -> None:
    """A ``Present`` match has no value; every other kind needs one; a regular expression must be one Envoy runs."""
    if kind == "Present":
        if value is not None:
            c.error("value", "must be empty when type is Present")
    elif value is None or value == "":
        c.error("value", f"is required when type is {kind}")
    elif kind == "RegularExpression" and (problem := regex_problem(value)):
        c.error("value", problem)
