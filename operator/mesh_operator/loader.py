"""Read mesh YAML from files and directories: the I/O edge in front of the pure pipeline.

Every problem is reported with where it is (``file.yaml#2`` is the second document of the file) and nothing is
raised for bad input: unreadable files, broken YAML and invalid objects all come back as :class:`Problem`s.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from mesh_operator.api import CRD_KINDS, Policy
from mesh_operator.api.gateway import GRPCRoute, HTTPRoute
from mesh_operator.translate import MeshState, Refused, state_from_objects
from mesh_operator.validation import AnyObject, validate_document
from mesh_operator.validation.violations import Violation

YAML_SUFFIXES = (".yaml", ".yml")
#: One object at most 1.5 MiB (as JSON): Kubernetes' own limit for an object (etcd's request size).
MAX_OBJECT_BYTES = 1_572_864
#: A file at most 64 MiB, read before parsing: a bound on what one bad file can cost.
MAX_FILE_BYTES = 64 * 1024 * 1024
POLICY_KINDS = tuple(kind for kind in CRD_KINDS if kind != "Mesh")


@dataclass(frozen=True)
class Problem:
    source: str
    violation: Violation

    def __str__(self) -> str:
        return f"{self.source}: {self.violation}"


@dataclass
class Loaded:
    objects: list[tuple[str, AnyObject]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    #: Labels of objects that parsed but break a cross-field rule.
    invalid: set[str] = field(default_factory=set)
    #: Policies that could not be parsed at all, by label (they still get a status).
    refused: dict[str, Refused] = field(default_factory=dict)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.violation.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.violation.severity == "warning"]

    @property
    def failed_labels(self) -> set[str]:
        """Labels of documents with errors (parsed or not)."""
        return {p.source for p in self.errors}

    def state(self, keep: dict[str, object] | None = None) -> MeshState:
        """The mesh as read. Invalid policies are kept (translation marks them ``Accepted=False``) and policies
        that could not be parsed become :class:`Refused` entries. An invalid Mesh or Inventory is left out whole,
        so it cannot take config away from proxies that rely on it — or, with ``keep`` (label -> the last valid
        object of that document), that last valid object stands in for it."""
        keep = keep or {}
        objects: list[object] = []
        for label, obj in self.objects:
            if label not in self.invalid or isinstance(obj, Policy | HTTPRoute | GRPCRoute):
                objects.append(obj)
        parsed_ok = {label for label, obj in self.objects if label not in self.invalid}
        objects += [obj for label, obj in keep.items() if label in self.failed_labels and label not in parsed_ok]
        state = state_from_objects(objects)
        return replace(state, refused=tuple(self.refused[k] for k in sorted(self.refused)))

    def valid_documents(self) -> dict[str, object]:
        """Label -> object of every valid Mesh and Inventory document (what ``keep`` remembers)."""
        return {
            label: obj
            for label, obj in self.objects
            if label not in self.invalid and not isinstance(obj, Policy | HTTPRoute | GRPCRoute)
        }


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
            size = f.stat().st_size
            if size > MAX_FILE_BYTES:
                result.problems.append(Problem(str(f), Violation("", f"file is {size} bytes; the limit is 64 MiB")))
                continue
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
        size = len(json.dumps(doc, default=str))
        if size > MAX_OBJECT_BYTES:
            limit = Violation("", f"object is {size} bytes as JSON; the limit is {MAX_OBJECT_BYTES} (1.5 MiB)")
            result.problems.append(Problem(where, limit))
            if (refused := _refused(doc, [limit])) is not None:
                result.refused[where] = refused
            continue
        checked = validate_document(doc)
        name = _name_of(doc)
        label = f"{where} ({name})" if name else where
        result.problems.extend(Problem(label, v) for v in checked.violations)
        if checked.obj is not None:
            result.objects.append((label, checked.obj))
            if not checked.ok:
                result.invalid.add(label)
        elif (refused := _refused(doc, checked.violations)) is not None:
            result.refused[label] = refused
    return result


def _refused(doc: Any, violations: list[Violation]) -> Refused | None:
    """A policy document that could not be parsed, if its kind and name can be read."""
    if not isinstance(doc, dict) or doc.get("kind") not in POLICY_KINDS:
        return None
    meta = doc.get("metadata")
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str):
        return None
    ns, gen = meta.get("namespace"), meta.get("generation")
    namespace = ns if isinstance(ns, str) else "default"
    generation = gen if isinstance(gen, int) else 1
    errs = tuple(v for v in violations if v.severity == "error")
    return Refused(doc["kind"], namespace, meta["name"], errs, generation)


def _name_of(doc: Any) -> str:
    if not isinstance(doc, dict):
        return ""
    meta: dict[str, Any] = doc["metadata"] if isinstance(doc.get("metadata"), dict) else {}
    ns = meta.get("namespace")
    name = meta.get("name", "?")
    return f"{doc.get('kind', '?')} {ns + '/' if ns else ''}{name}"
