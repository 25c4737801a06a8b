"""Regular expressions as Envoy will run them: RE2 syntax, within Envoy's program-size limit."""

from __future__ import annotations

import re2

#: Envoy rejects a google_re2 regex whose program size exceeds this (runtime ``re2.max_program_size.error_level``).
ENVOY_MAX_PROGRAM_SIZE = 100


def regex_problem(pattern: str) -> str | None:
    """Why Envoy would refuse ``pattern``, or ``None`` when it is fine."""
    try:
        compiled = re2.compile(pattern)
    except re2.error as e:
        detail = e.args[0].decode() if e.args and isinstance(e.args[0], bytes) else str(e)
        return f"not a valid RE2 regular expression ({detail})"
    size = int(compiled.programsize)
    if size > ENVOY_MAX_PROGRAM_SIZE:
        return f"regular expression too complex for Envoy: program size {size} > {ENVOY_MAX_PROGRAM_SIZE}"
    return None
