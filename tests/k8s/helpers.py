"""Helpers shared by the k8s-tier tests: namespaces, CRD installation, and the documents we dry-run."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from mesh_operator.validation import validate_document

REPO = Path(__file__).resolve().parents[2]
CRD_DIR = REPO / "crds"


def error_message(err: client.ApiException) -> str:
    """The `message` of the Status an apiserver error carries (field paths and reasons live there)."""
    message: str = json.loads(err.body or "{}").get("message", "")
    return message


def create_namespace(api: client.ApiClient, name: str) -> str:
    """Create namespace `name` unless it exists. (A bare apiserver never finishes deleting namespaces.)"""
    try:
        client.CoreV1Api(api).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    except client.ApiException as err:
        if err.status != 409:
            raise
    return name


def wait_established(api: client.ApiClient, crd_name: str, timeout: float = 30.0) -> dict[str, str]:
    """Wait until the CRD's Established condition is True; returns its conditions as {type: status}."""
    ext = client.ApiextensionsV1Api(api)
    deadline = time.monotonic() + timeout
    conditions: dict[str, str] = {}
    while time.monotonic() < deadline:
        status = ext.read_custom_resource_definition(crd_name).status
        conditions = {c.type: c.status for c in (status.conditions if status else None) or []}
        if conditions.get("Established") == "True":
            return conditions
        time.sleep(0.1)
    raise AssertionError(f"CRD {crd_name} not Established after {timeout}s: {conditions}")


@dataclass(frozen=True)
class Crd:
    """What the tests need to know about one CRD file."""

    path: Path
    body: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.body["metadata"]["name"])

    @property
    def group(self) -> str:
        return str(self.body["spec"]["group"])

    @property
    def kind(self) -> str:
        return str(self.body["spec"]["names"]["kind"])

    @property
    def plural(self) -> str:
        return str(self.body["spec"]["names"]["plural"])

    @property
    def namespaced(self) -> bool:
        return bool(self.body["spec"]["scope"] == "Namespaced")

    @property
    def storage_version(self) -> dict[str, Any]:
        versions: list[dict[str, Any]] = self.body["spec"]["versions"]
        return next(v for v in versions if v.get("storage"))

    @property
    def version(self) -> str:
        return str(self.storage_version["name"])

    @property
    def printer_columns(self) -> list[dict[str, Any]]:
        columns: list[dict[str, Any]] = self.storage_version.get("additionalPrinterColumns", [])
        return columns


def load_crds() -> dict[str, Crd]:
    """Every CRD in crds/*.yaml, by kind."""
    crds: dict[str, Crd] = {}
    for path in sorted(CRD_DIR.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                crd = Crd(path, doc)
                crds[crd.kind] = crd
    return crds


VALID = "valid"
REJECTED = "rejected"  # the golden case says our models refuse it: the CRD, generated from them, must refuse it too
INVALID_SEMANTICS = "invalid-semantics"  # parsed, then Accepted=False reason Invalid: the CRD may not see why

_PROBLEM = re.compile(r"^input\.yaml#\d+ \((?P<kind>\w+) (?P<name>[^)]+)\): (?P<text>.*)$", re.S)


@dataclass(frozen=True)
class PolicyDoc:
    """One Meshwork resource found in examples/ or a golden-test input, and what the apiserver should make of it."""

    path: Path
    index: int
    body: dict[str, Any]
    expected: str = VALID
    problems: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        name = self.body.get("metadata", {}).get("name", "?")
        return f"{self.path.relative_to(REPO)}#{self.index}:{self.body['kind']}/{name}"


def _golden_expectations(input_path: Path) -> dict[tuple[str, str], list[str]]:
    """Errors (not warnings) by (kind, name), from the case's status.yaml."""
    status_path = input_path.with_name("status.yaml")
    if not status_path.is_file():
        return {}
    status = yaml.safe_load(status_path.read_text()) or {}
    errors: dict[tuple[str, str], list[str]] = {}
    for problem in status.get("problems") or []:
        match = _PROBLEM.match(str(problem))
        if match and not match["text"].startswith("warning:"):
            errors.setdefault((match["kind"], match["name"]), []).append(match["text"])
    return errors


def policy_documents(crd_kinds: set[str]) -> Iterator[PolicyDoc]:
    """Documents in examples/**/*.yaml and tests/golden/cases/*/input.yaml whose apiVersion is meshwork.io/* and
    whose kind has a CRD (local-only kinds such as Inventory are left out).

    Examples must all be valid. A golden input is valid unless its case's status.yaml lists an error for it: then it
    is INVALID_SEMANTICS when our models parse it but the validator finds it wrong (cross-references such as an
    unknown subset are beyond a CRD schema), otherwise REJECTED (our models could not even parse it, so the CRD
    generated from them must refuse it as well).
    """
    paths = sorted({*REPO.glob("examples/**/*.yaml"), *REPO.glob("tests/golden/cases/*/input.yaml")})
    for path in paths:
        golden = path.name == "input.yaml" and "golden" in path.parts
        errors = _golden_expectations(path) if golden else {}
        for index, doc in enumerate(yaml.safe_load_all(path.read_text())):
            if not (
                isinstance(doc, dict)
                and str(doc.get("apiVersion", "")).startswith("meshwork.io/")
                and doc.get("kind") in crd_kinds
            ):
                continue
            meta = doc.get("metadata") or {}
            problems = errors.get((doc["kind"], str(meta.get("name"))), [])
            expected = VALID
            if problems:
                # Parsed by our models but wrong (cross-references beyond a CRD schema), or not even parsed.
                expected = INVALID_SEMANTICS if validate_document(doc).obj is not None else REJECTED
            yield PolicyDoc(path, index, doc, expected, tuple(problems))
