"""Whatever validation accepts, Envoy accepts (property-based, real Envoy in ``--mode validate``).

Policies of every kind are generated over the whole API, straight from the pydantic models (every field, with
values biased toward the edges: zero and huge durations, integers at and past their bounds, strings with control
characters). Each one either is refused by validation — every violation naming a field path — or is translated
into the config of every proxy it affects, and real Envoy accepts all of those configs (the pre-flight check,
which runs real Envoy, refuses nothing) and the translator raises nowhere.

Examples per run: ``MESHWORK_PROPERTY_EXAMPLES`` (default 40, about half a minute). A soak run:
``MESHWORK_PROPERTY_EXAMPLES=2000 .venv/bin/python -m pytest tests/envoy/test_validation_implies_envoy_accepts.py``.
"""

from __future__ import annotations

import os
import types
import typing
from typing import Any, Literal, get_args, get_origin

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from mesh_operator.api import AccessPolicy, RetryPolicy, TrafficPolicy
from mesh_operator.api.common import _check_duration
from mesh_operator.control.build import build
from mesh_operator.loader import load_text
from mesh_operator.validation import errors, validate_document
from xds_server.preflight import Preflight

pytestmark = [pytest.mark.envoy, pytest.mark.timeout(900)]

EXAMPLES = int(os.environ.get("MESHWORK_PROPERTY_EXAMPLES", "40"))

INVENTORY = """
apiVersion: meshwork.io/v1alpha1
kind: Inventory
metadata: {name: local}
spec:
  services:
    - name: backend
      ports: [{port: 8080}]
      instances:
        - {name: backend-1, address: 127.0.0.1, port: 9001, labels: {version: v1}, sidecar: {inboundPort: 15001}}
        - {name: backend-2, address: 127.0.0.1, port: 9002, labels: {version: v2}, sidecar: {inboundPort: 15002}}
    - name: grpc
      ports: [{port: 9090, protocol: HTTP2}]
      instances:
        - {name: grpc-1, address: 127.0.0.1, port: 9003, sidecar: {inboundPort: 15003}}
  clients:
    - name: caller
      sidecar: {upstreams: [{service: backend, localPort: 18080}, {service: grpc, localPort: 18081}]}
"""

DURATIONS = st.sampled_from(
    ["0s", "1ms", "49ms", "50ms", "250ms", "1s", "1.5s", "10s", "1h", "87600h", "400000000000s"]
)
NAMES = st.sampled_from(["v1", "v2", "split", "api", "x"])
TEXT = st.one_of(
    st.sampled_from(["/", "/api", "/api/v1", "x-user", "alice", "a b", "", "/a\nb", "x\r\ny", "v\x00", "*", "%2e"]),
    st.text(alphabet=st.characters(codec="ascii"), max_size=12),
)
HEADER_NAMES = st.sampled_from(["x-user", "x-env", "content-type", "x-a\nb", "host", ":path", "x_a", "X-Up"])
SPECIAL: dict[str, st.SearchStrategy[Any]] = {
    "name": NAMES,
    "subset": NAMES,
    "section_name": NAMES,
    "target_ref": st.sampled_from(
        [{"name": "backend"}, {"name": "grpc"}, {"kind": "TrafficPolicy", "name": "backend", "sectionName": "split"}]
    ),
    "labels": st.sampled_from([{"version": "v1"}, {"version": "v2"}, {"version": "v3"}]),
    "header": HEADER_NAMES,
    "namespace": st.sampled_from(["default"]),
}


def _ints(metadata: list[Any]) -> st.SearchStrategy[int]:
    lo = next((m.ge for m in metadata if hasattr(m, "ge")), 0)
    hi = next((m.le for m in metadata if hasattr(m, "le")), 2**33)
    edges = [lo, lo + 1, hi, hi - 1, 2**32 - 1, 2**32, 499, 0]
    return st.one_of(st.sampled_from(edges), st.integers(min_value=lo - 1, max_value=min(hi, 2**34) + 1))


def strategy(annotation: Any, metadata: list[Any] | None = None, field: str = "") -> st.SearchStrategy[Any]:
    """Plain (YAML-like) values for a field of the given annotation, biased toward edge cases."""
    metadata = list(metadata or [])
    if field in SPECIAL:
        return SPECIAL[field]
    origin = get_origin(annotation)
    if origin is typing.Annotated:
        inner, *extra = get_args(annotation)
        for e in extra:
            metadata += list(getattr(e, "metadata", [e]))
        return strategy(inner, metadata, field)
    if any(getattr(m, "func", None) is _check_duration for m in metadata):
        return DURATIONS
    if origin in (types.UnionType, typing.Union):
        options = [a for a in get_args(annotation) if a is not type(None)]
        return st.one_of(st.none(), *(strategy(a, metadata, field) for a in options))
    if origin is Literal:
        return st.sampled_from(get_args(annotation))
    if origin is list:
        (item,) = get_args(annotation)
        return st.lists(strategy(item, [], field), max_size=3)
    if origin is dict:
        return st.dictionaries(st.sampled_from(["version", "app"]), st.sampled_from(["v1", "v2"]), max_size=2)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return model_dict(annotation)
    if annotation is bool:
        return st.booleans()
    if annotation is int:
        return _ints(metadata)
    if annotation is float:
        return st.sampled_from([0, 0.5, 10, 50, 100, 150])
    return TEXT


def model_dict(model: type[BaseModel]) -> st.SearchStrategy[dict[str, Any]]:
    """A dict (by alias) with a random subset of the model's fields; required ones always present."""
    required, optional = {}, {}
    for name, f in model.model_fields.items():
        if name in ("api_version", "kind", "metadata", "status"):
            continue
        s = strategy(f.annotation, f.metadata, name)
        (required if f.is_required() else optional)[f.alias or name] = s
    return st.fixed_dictionaries(required, optional=optional)  # type: ignore[arg-type]


def policy(kind: type[BaseModel]) -> st.SearchStrategy[dict[str, Any]]:
    spec = model_dict(kind.model_fields["spec"].annotation)  # type: ignore[arg-type]
    return spec.map(
        lambda s: {
            "apiVersion": "meshwork.io/v1alpha1",
            "kind": kind.__name__,
            "metadata": {"name": "generated", "namespace": "default"},
            "spec": s,
        }
    )


@pytest.fixture(scope="module")
def preflight() -> Preflight:
    return Preflight()


COUNTS = {"accepted": 0, "refused": 0}


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=os.environ.get("CI") == "true",
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(doc=st.one_of(policy(TrafficPolicy), policy(RetryPolicy), policy(AccessPolicy)))
def test_whatever_validation_accepts_envoy_accepts(doc: dict[str, Any], preflight: Preflight) -> None:
    found = errors(validate_document(doc).violations)
    if found:
        COUNTS["refused"] += 1
        assert all(v.path for v in found), [str(v) for v in found]
        return
    state = load_text(INVENTORY + "---\n" + yaml.safe_dump(doc), "generated.yaml").state()
    result = build(state, {}, {}, preflight)
    outcome = result.translation.outcomes[next(iter(result.translation.outcomes))]
    assert outcome.reason not in ("RejectedByEnvoy", "TranslationFailed"), (outcome, doc)
    assert not result.failed, (result.failed, doc)
    assert set(result.snapshots) == set(state.workloads)
    if outcome.accepted:
        COUNTS["accepted"] += 1


def test_the_generated_policies_were_both_accepted_and_refused() -> None:
    # Runs after the property (file order): an all-refused run would prove nothing.
    assert COUNTS["accepted"] >= EXAMPLES // 10, COUNTS
    assert COUNTS["refused"] >= 1, COUNTS
