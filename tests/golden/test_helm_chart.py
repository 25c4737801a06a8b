"""The Helm chart charts/meshwork: lint, `helm template` goldens per value set, schema errors, least-privilege RBAC.

Goldens live in tests/golden/chart/<set>.golden.yaml beside <set>.values.yaml; after an intended change rewrite
them with ``pytest tests/golden/test_helm_chart.py --update-golden`` and review the diff. helm is built by
scripts/k8s/build-binaries.sh; without it these tests are skipped with the reason (CI=true: they fail).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from mesh_operator.testing import cache_dir
from mesh_operator.testing.binaries import k8s_version

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "meshwork"
CASES = Path(__file__).parent / "chart"
VALUE_SETS = sorted(p.name.removesuffix(".values.yaml") for p in CASES.glob("*.values.yaml"))
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection", "*"}


@pytest.fixture(scope="module")
def helm() -> Path:
    env = os.environ.get("MESHWORK_HELM")
    which = shutil.which("helm")
    for candidate in (env, str(cache_dir() / k8s_version() / "helm"), which):
        if candidate and os.access(candidate, os.X_OK):
            return Path(candidate)
    reason = f"helm not found (MESHWORK_HELM, {cache_dir() / k8s_version() / 'helm'}, PATH): run `make k8s-binaries`"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true requires helm: {reason}", pytrace=False)
    pytest.skip(reason)


def _helm(helm: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(helm), *args], capture_output=True, text=True, timeout=120, check=False)


def _template(helm: Path, values: Path | None = None, *extra: str) -> subprocess.CompletedProcess[str]:
    args = ["template", "meshwork", str(CHART), "--namespace", "meshwork-system", "--kube-version", "v1.35.4"]
    if values is not None:
        args += ["-f", str(values)]
    return _helm(helm, *args, *extra)


def _docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def test_there_are_value_sets_for_default_ha_and_custom_images() -> None:
    assert {"default", "ha", "custom-images"} <= set(VALUE_SETS)


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_helm_lint_is_clean_in_strict_mode(helm: Path, value_set: str) -> None:
    done = _helm(helm, "lint", "--strict", str(CHART), "-f", str(CASES / f"{value_set}.values.yaml"))
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_helm_template_output_matches_the_golden(helm: Path, value_set: str, update_golden: bool) -> None:
    done = _template(helm, CASES / f"{value_set}.values.yaml")
    assert done.returncode == 0, done.stderr
    golden = CASES / f"{value_set}.golden.yaml"
    if update_golden:
        golden.write_text(done.stdout)
        return
    assert golden.is_file(), f"{golden.name} missing; run with --update-golden and review it"
    assert done.stdout == golden.read_text(), f"helm template drifted from {golden.name}; --update-golden, review"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("controlPlane.replica=2", "at '/controlPlane': additional properties 'replica' not allowed"),  # typo
        ("mesh.mtls.mode=strict", "at '/mesh/mtls/mode': value must be one of 'Strict', 'Permissive'"),
        ("controlPlane.ports.xds=70000", "at '/controlPlane/ports/xds': maximum"),
        ("webhooks.validation.failurePolicy=Maybe", "at '/webhooks/validation/failurePolicy': value must be one of"),
    ],
)
def test_a_bad_value_fails_helm_template_naming_the_key(helm: Path, override: str, message: str) -> None:
    done = _template(helm, None, "--set", override)
    assert done.returncode != 0
    assert "values don't meet the specifications of the schema" in done.stderr
    assert message in done.stderr, done.stderr


def test_the_chart_carries_exactly_the_repositorys_crds() -> None:
    ours = {p.name: p.read_text() for p in (CHART / "files" / "crds").glob("*.yaml")}
    repo = {p.name: p.read_text() for p in (ROOT / "crds").glob("*.yaml")}
    assert ours == repo, "charts/meshwork/files/crds drifted from crds/: copy crds/*.yaml into it"


def test_crds_are_templates_kept_on_uninstall_so_helm_upgrade_applies_new_schemas(helm: Path) -> None:
    done = _template(helm)
    crds = [d for d in _docs(done.stdout) if d["kind"] == "CustomResourceDefinition"]
    assert sorted(c["metadata"]["name"] for c in crds) == [
        "accesspolicies.meshwork.io",
        "authenticationpolicies.meshwork.io",
        "meshes.meshwork.io",
        "retrypolicies.meshwork.io",
        "trafficpolicies.meshwork.io",
    ]
    assert all(c["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep" for c in crds)
    assert not (CHART / "crds").exists(), "crds/ in the chart would never be upgraded by Helm"


def test_the_control_plane_may_write_only_status_leases_webhook_configs_tokenreviews_events_and_its_ca(
    helm: Path,
) -> None:
    docs = _docs(_template(helm).stdout)
    writes: set[tuple[str, str, str]] = set()
    for role in (d for d in docs if d["kind"] in ("ClusterRole", "Role")):
        for rule in role["rules"]:
            if WRITE_VERBS & set(rule["verbs"]):
                names = ",".join(rule.get("resourceNames", [])) or "*"
                writes |= {(g, r, names) for g in rule["apiGroups"] for r in rule["resources"]}
    allowed_any_name = {
        ("meshwork.io", f"{kind}/status", "*")
        for kind in ("trafficpolicies", "retrypolicies", "accesspolicies", "authenticationpolicies")
    } | {
        ("meshwork.io", "meshes/status", "*"),
        ("gateway.networking.k8s.io", "httproutes/status", "*"),
        ("gateway.networking.k8s.io", "grpcroutes/status", "*"),
        ("gateway.networking.x-k8s.io", "xmeshes/status", "*"),
        ("authentication.k8s.io", "tokenreviews", "*"),
        ("", "events", "*"),
        ("events.k8s.io", "events", "*"),
        ("coordination.k8s.io", "leases", "*"),  # create only (names cannot restrict create)
        ("", "secrets", "*"),  # create only, release namespace, for the CA root when no existingSecret
        ("", "configmaps", "*"),  # create only, for the root CA ConfigMap of injected namespaces
    }
    named = {
        ("admissionregistration.k8s.io", "validatingwebhookconfigurations", "meshwork-control-plane"),
        ("admissionregistration.k8s.io", "mutatingwebhookconfigurations", "meshwork-control-plane"),
        ("coordination.k8s.io", "leases", "meshwork-control-plane"),
        ("", "secrets", "meshwork-ca"),
        ("", "configmaps", "meshwork-root-ca"),
    }
    assert writes <= allowed_any_name | named, sorted(writes - allowed_any_name - named)
    for role in (d for d in docs if d["kind"] in ("ClusterRole", "Role")):
        for rule in role["rules"]:
            if rule["resources"] in (["secrets"], ["configmaps"]) and "resourceNames" not in rule:
                assert rule["verbs"] == ["create"], rule
            if rule["resources"] == ["leases"] and "resourceNames" not in rule:
                # create, or read and patch (each replica's ACK Lease is named after its pod), in one namespace
                assert role["kind"] == "Role" and set(rule["verbs"]) <= {"create", "get", "list", "watch", "patch"}
            assert "*" not in rule["verbs"] and "*" not in rule["resources"], rule


def test_ha_values_run_two_replicas_behind_a_disruption_budget(helm: Path) -> None:
    docs = _docs(_template(helm, CASES / "ha.values.yaml").stdout)
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pdb = next(d for d in docs if d["kind"] == "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    default = _docs(_template(helm).stdout)
    assert not [d for d in default if d["kind"] == "PodDisruptionBudget"], "a PDB on one replica blocks drains"


def test_webhooks_call_the_control_plane_service_with_an_empty_ca_bundle_patched_at_runtime(helm: Path) -> None:
    docs = _docs(_template(helm).stdout)
    service = next(d for d in docs if d["kind"] == "Service")
    ports = {p["name"]: (p["port"], p["targetPort"]) for p in service["spec"]["ports"]}
    assert ports["https-webhook"] == (443, "https-webhook")
    for kind, path in (("ValidatingWebhookConfiguration", "/validate"), ("MutatingWebhookConfiguration", "/inject")):
        config = next(d for d in docs if d["kind"] == kind)
        (hook,) = config["webhooks"]
        assert hook["clientConfig"]["service"] == {
            "name": service["metadata"]["name"],
            "namespace": "meshwork-system",
            "path": path,
            "port": 443,
        }
        # not rendered, so `helm upgrade` keeps the caBundle the control plane wrote (an empty one overwrote it)
        assert "caBundle" not in hook["clientConfig"]
        assert hook["failurePolicy"] == "Ignore"


def test_the_rate_limit_service_is_off_by_default_and_enabled_the_mesh_points_the_sidecars_at_it(helm: Path) -> None:
    default = _docs(_template(helm).stdout)
    assert not [d for d in default if "ratelimit" in d["metadata"]["name"]], "off by default"
    mesh = next(d for d in default if d["kind"] == "Mesh")
    assert "rateLimitService" not in mesh["spec"]

    docs = _docs(_template(helm, CASES / "ratelimit.values.yaml").stdout)
    by_name = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    service = by_name[("Service", "meshwork-ratelimit")]
    mesh = next(d for d in docs if d["kind"] == "Mesh")
    assert mesh["spec"]["rateLimitService"] == {
        "address": "meshwork-ratelimit.meshwork-system.svc",
        "port": service["spec"]["ports"][0]["port"],
    }
    deployment = by_name[("Deployment", "meshwork-ratelimit")]
    pod = deployment["spec"]["template"]
    assert pod["metadata"]["annotations"]["meshwork.io/inject"] == "false"
    (container,) = pod["spec"]["containers"]
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
    assert env["REDIS_URL"] == "meshwork-ratelimit-redis:6379"
    assert env["REDIS_AUTH"] == {"secretKeyRef": {"name": "ratelimit-redis", "key": "password"}}
    # The limits come from the ConfigMap written from the policies, mounted where RUNTIME_ROOT/SUBDIRECTORY say.
    assert (env["RUNTIME_ROOT"], env["RUNTIME_SUBDIRECTORY"]) == ("/data", "ratelimit")
    assert container["volumeMounts"][0]["mountPath"] == "/data/ratelimit/config"
    assert pod["spec"]["volumes"][0]["configMap"] == {"name": "meshwork-ratelimit-config", "optional": True}
    # The control plane may write that ConfigMap (and create ConfigMaps), nothing else more than without it.
    role = by_name[("Role", "meshwork-ratelimit-config-writer")]
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]},
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": ["meshwork-ratelimit-config"],
            "verbs": ["get", "update"],
        },
    ]
    cp = by_name[("Deployment", "meshwork-control-plane")]["spec"]["template"]["spec"]["containers"][0]
    assert cp["args"] == ["--ratelimit-configmap=meshwork-ratelimit-config"]  # passed by the chart itself
    redis = by_name[("NetworkPolicy", "meshwork-ratelimit-redis")]
    (rule,) = redis["spec"]["ingress"]
    assert rule["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "ratelimit"


def test_a_bad_rate_limit_value_fails_helm_template_naming_the_key(helm: Path) -> None:
    done = _template(helm, None, "--set", "rateLimit.service.port=0")
    assert done.returncode != 0
    assert "at '/rateLimit/service/port': minimum" in done.stderr, done.stderr
