"""The pieces of the in-cluster wiring that need no cluster: the settings file the chart renders, the adapter's
transparent mode (pods injected by the webhook), and which pods are reported as missing their sidecar."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from mesh_operator.inject.settings import InjectionSettings
from mesh_operator.kube.adapter import ClusterObjects, adapt
from mesh_operator.kube.config import ConfigError, parse
from mesh_operator.kube.missing import missing_sidecars
from mesh_operator.testing import cache_dir
from mesh_operator.testing.binaries import k8s_version
from tests.unit.test_kube_adapter import pod, service, slice_

CHART = Path(__file__).resolve().parents[2] / "charts" / "meshwork"


def _rendered_config() -> str:
    helm = cache_dir() / k8s_version() / "helm"
    if not helm.exists():
        helm_path = shutil.which("helm")
        if helm_path is None:
            if os.environ.get("CI") == "true":
                pytest.fail(f"CI=true requires helm at {helm}: run `make k8s-binaries`", pytrace=False)
            pytest.skip(f"helm missing at {helm}: run `make k8s-binaries`")
        helm = Path(helm_path)
    out = subprocess.run(
        [str(helm), "template", "meshwork", str(CHART), "-n", "meshwork-system", "-s", "templates/configmap.yaml",
         "--kube-version", "1.35.4"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    return str(yaml.safe_load(out)["data"]["config.yaml"])


def test_the_settings_file_the_chart_renders_gives_the_ports_names_and_sidecar_settings_of_its_values() -> None:
    cfg = parse(_rendered_config())
    assert (cfg.xds_port, cfg.webhook_port, cfg.metrics_port, cfg.health_port, cfg.identity_port) == (
        15012, 9443, 15014, 15021, 15017,
    )  # fmt: skip
    assert cfg.namespace == "meshwork-system" and cfg.lease_name == "meshwork-control-plane"
    assert cfg.validating_configuration == cfg.mutating_configuration == "meshwork-control-plane"
    assert cfg.ca_secret == "meshwork-ca" and not cfg.ca_external
    s = cfg.injection
    assert s.proxy_image == "localhost/meshwork/sidecar:0.1.0"
    assert s.control_plane == "meshwork-control-plane.meshwork-system.svc:15012"
    assert s.identity_url == "https://meshwork-control-plane.meshwork-system.svc:15017/identity/v1/certificate"
    assert s.control_plane_id == "spiffe://cluster.local/ns/meshwork-system/sa/meshwork-control-plane"
    assert s.mode == "native" and s.proxy_uid == 1337
    assert s.resources.memory_limit == "256Mi"
    assert "meshwork-control-plane.meshwork-system.svc" in cfg.webhook_names


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("ports: {xds: 70000}", "ports.xds"),
        ("ports: 3", "ports"),
        ("proxy: {nativeSidecar: maybe}", "proxy.nativeSidecar"),
        ("leaderElection: {leaseDurationSeconds: -1}", "leaderElection.leaseDurationSeconds"),
        ("proxy: {ports: {admin: x}}", "proxy.ports.admin"),
        ("- a list", "<file>"),
    ],
)
def test_a_bad_settings_file_is_refused_with_the_field_path(text: str, path: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse(text)
    assert err.value.path == path


def _captured(p: dict[str, Any]) -> dict[str, Any]:
    p["spec"]["initContainers"] = [{"name": "meshwork-init"}, {"name": "meshwork-proxy", "restartPolicy": "Always"}]
    return p


def test_a_pod_injected_by_the_webhook_is_transparent_and_peers_reach_it_on_the_apps_port() -> None:
    svc = service("backend", port=8080)
    svc["spec"]["clusterIP"] = "10.96.0.20"
    headless = service("db")
    headless["spec"]["clusterIP"] = "None"
    objects = ClusterObjects(
        services={"shop/backend": svc, "shop/db": headless},
        endpoint_slices={"shop/backend-abc": slice_("backend", ["b1"])},
        pods={"shop/b1": _captured(pod("b1", "10.244.0.5")), "shop/old": pod("old", "10.244.0.6")},
    )
    state, problems = adapt(objects, [])
    assert problems == []
    backend = state.services["shop/backend"]
    assert backend.cluster_ip == "10.96.0.20"
    assert state.services["shop/db"].cluster_ip is None
    (instance,) = backend.instances
    assert (instance.address, instance.port) == ("10.244.0.5", 8080)  # the app's port, captured into the sidecar
    b1 = state.workloads["shop/b1"]
    assert b1.transparent
    (inbound,) = b1.inbound
    assert (inbound.listen_port, inbound.app_address, inbound.app_port) == (8080, "127.0.0.1", 8080)
    assert not state.workloads["shop/old"].transparent  # annotated explicit ports (the operator tests' stand-ins)


def _plain(name: str, ns: str, **annotations: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": ns, "uid": f"uid-{name}", "annotations": annotations},
        "spec": {"containers": [{"name": "app", "image": "app"}]},
        "status": {"phase": "Running"},
    }


def test_only_pods_the_webhook_would_have_injected_are_reported_as_missing_their_sidecar() -> None:
    labels = {"shop": {"meshwork.io/inject": "enabled"}, "plain": {}}
    pods = [
        _plain("missed", "shop"),
        _plain("opted-out", "shop", **{"meshwork.io/inject": "false"}),
        _captured({**_plain("injected", "shop")}),
        _plain("other", "plain"),
        _plain("system", "kube-system"),
        {**_plain("done", "shop"), "status": {"phase": "Succeeded"}},
    ]
    found = missing_sidecars(pods, InjectionSettings(), labels.get)
    assert [(m.key, m.uid) for m in found] == [("shop/missed", "uid-missed")]
    assert "should carry the Meshwork sidecar" in found[0].reason


def test_an_access_policy_on_a_captured_pod_counts_that_pod_as_affected_for_its_receipts() -> None:
    from mesh_operator.api import AccessPolicy
    from mesh_operator.control.provenance import resource_policies
    from mesh_operator.translate import translate_mesh

    svc = service("backend", port=8080)
    svc["spec"]["clusterIP"] = "10.96.0.20"
    objects = ClusterObjects(
        services={"shop/backend": svc},
        endpoint_slices={"shop/backend-abc": slice_("backend", ["b1"])},
        pods={"shop/b1": _captured(pod("b1", "10.244.0.5"))},
    )
    policy = AccessPolicy.model_validate(
        {
            "apiVersion": "meshwork.io/v1alpha1",
            "kind": "AccessPolicy",
            "metadata": {"name": "callers", "namespace": "shop"},
            "spec": {
                "targetRef": {"kind": "Service", "name": "backend"},
                "rules": [
                    {
                        "name": "fe",
                        "action": "Allow",
                        "from": [{"serviceAccount": {"namespace": "shop", "name": "frontend"}}],
                    }
                ],
            },
        }
    )
    state, _ = adapt(objects, [policy])
    cfg = translate_mesh(state).proxies["shop/b1"]
    assert cfg.transparent is not None and cfg.inbound == ()  # its listeners live in the transparent config
    carried = {p for ps in resource_policies(cfg).values() for p in ps}
    assert "AccessPolicy/shop/callers" in carried
