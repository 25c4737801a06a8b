"""Read mesh YAML from files and directories: the I/O edge in front of the pure pipeline.

Every problem is reported with where it is (``file.yaml#2`` is the second document of the file) and nothing is
raised for bad input: unreadable files, broken YAML and invalid objects all come back as :class:`Problem`s.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mesh_operator.api import Policy
from mesh_operator.translate import MeshState, state_from_objects
from mesh_operator.validation import ApiObject, validate_document
from mesh_operator.validation.violations import Violation

YAML_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class Problem:
    source: str
    violation: Violation

    def __str__(self) -> str:
        return f"{self.source}: {self.violation}"


@dataclass
class Loaded:
    objects: list[tuple[str, ApiObject]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    #: Labels of objects that parsed but break a cross-field rule.
    invalid: set[str] = field(default_factory=set)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.violation.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.violation.severity == "warning"]

    def state(self) -> MeshState:
        """The mesh as read. Objects with schema errors are left out (they could not be parsed). Invalid policies
        are kept, so translation marks them ``Accepted=False``; an invalid Mesh or Inventory is left out whole,
        so it cannot take config away from proxies that rely on it."""
        return state_from_objects(
            obj for label, obj in self.objects if label not in self.invalid or isinstance(obj, Policy)
        )


def expand(paths: Iterable[str | Path]) -> list[Path]:
    """Files named directly, plus every YAML file under named directories, sorted for determinism."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(f for f in p.rglob("*") if f.suffix in YAML_SUFFIXES and f.is_file()))
        else:
            out.append(p)
    return out


def load_paths(paths: Iterable[str | Path]) -> Loaded:
    result = Loaded()
    files = expand(paths)
    if not files:
        result.problems.append(Problem("(arguments)", Violation("", "no YAML files found")))
    for f in files:
        try:
            text = f.read_text()
        except OSError as e:
            result.problems.append(Problem(str(f), Violation("", f"cannot read: {e.strerror or e}")))
            continue
        load_text(text, str(f), result)
    return result


def load_text(text: str, source: str, into: Loaded | None = None) -> Loaded:
    result = into if into is not None else Loaded()
    try:
        docs: list[Any] = list(yaml.safe_load_all(text))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        result.problems.append(Problem(source, Violation("", f"invalid YAML{where}: {problem}")))
        return result
    docs = [d for d in docs if d is not None]
    for i, doc in enumerate(docs):
        where = f"{source}#{i + 1}" if len(docs) > 1 else source
        checked = validate_document(doc)
        name = _name_of(doc)
        label = f"{where} ({name})" if name else where
        result.problems.extend(Problem(label, v) for v in checked.violations)
        if checked.obj is not None:
            result.objects.append((label, checked.obj))
            if not checked.ok:
                result.invalid.add(label)
    return result


def _name_of(doc: Any) -> str:
    if not isinstance(doc, dict):
        return ""
    meta: dict[str, Any] = doc["metadata"] if isinstance(doc.get("metadata"), dict) else {}
    ns = meta.get("namespace")
    name = meta.get("name", "?")
    return f"{doc.get('kind', '?')} {ns + '/' if ns else ''}{name}"
