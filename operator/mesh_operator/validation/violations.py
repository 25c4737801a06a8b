"""A violation is a field path and a message. Validators collect every violation; they never stop at the first."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Violation:
    path: str
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        prefix = "warning: " if self.severity == "warning" else ""
        return f"{prefix}{self.path}: {self.message}" if self.path else f"{prefix}{self.message}"


def format_path(loc: Sequence[str | int]) -> str:
    """``("spec", "rules", 0, "backends")`` -> ``spec.rules[0].backends``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def errors(violations: Iterable[Violation]) -> list[Violation]:
    return [v for v in violations if v.severity == "error"]


def warnings(violations: Iterable[Violation]) -> list[Violation]:
    return [v for v in violations if v.severity == "warning"]


class Collector:
    """Accumulates violations under a path prefix: ``c.at("rules", 0).error("name", "must be unique")``."""

    def __init__(self, prefix: tuple[str | int, ...] = (), sink: list[Violation] | None = None) -> None:
        self._prefix = prefix
        self.violations: list[Violation] = [] if sink is None else sink

    def at(self, *loc: str | int) -> Collector:
        return Collector(self._prefix + loc, self.violations)

    def error(self, field: str | int | None, message: str) -> None:
        self._add(field, message, "error")

    def warning(self, field: str | int | None, message: str) -> None:
        self._add(field, message, "warning")

    def _add(self, field: str | int | None, message: str, severity: Severity) -> None:
        loc = self._prefix if field is None else (*self._prefix, field)
        self.violations.append(Violation(format_path(loc), message, severity))
