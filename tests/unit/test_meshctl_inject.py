"""``meshctl inject -f``: the webhook's injection applied offline to the pods of manifests."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mesh_operator.inject import InjectionSettings, inject_pod
from mesh_operator.inject.pod import Injected
from meshctl.cli import main

MANIFESTS = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: web, image: localhost/web:1, ports: [{name: http, containerPort: 8080}],
         readinessProbe: {httpGet: {path: /ready, port: http}}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {selector: {app: web}, ports: [{port: 80, targetPort: http}]}
---
apiVersion: batch/v1
kind: Job
metadata: {name: report, namespace: shop}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: report, image: localhost/report:1}]
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly, namespace: shop}
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers: [{name: nightly, image: localhost/report:1}]
---
apiVersion: v1
kind: Pod
metadata: {name: debug, namespace: shop, annotations: {meshwork.io/inject: "false"}}
spec:
  containers: [{name: sh, image: localhost/debug:1}]
---
apiVersion: v1
kind: Pod
metadata: {name: agent, namespace: kube-system}
spec:
  containers: [{name: agent, image: localhost/agent:1}]
"""


def run(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[object], str]:
    src = tmp_path / "in.yaml"
    src.write_text(text)
    code = main(["inject", "-f", str(src), *args])
    out, errtext = capsys.readouterr()
    return code, list(yaml.safe_load_all(out)) if code == 0 else [], errtext


def names(pod_spec: dict[str, list[dict[str, str]]], key: str) -> list[str]:
    return [c["name"] for c in pod_spec.get(key, [])]


def test_every_pod_template_gets_the_sidecar_and_other_documents_pass_through(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, docs, errtext = run(tmp_path, MANIFESTS, capsys)
    assert code == 0
    deploy, service, job, cron, debug, agent = docs
    assert isinstance(deploy, dict) and isinstance(job, dict) and isinstance(cron, dict)
    for spec in (
        deploy["spec"]["template"]["spec"],
        job["spec"]["template"]["spec"],
        cron["spec"]["jobTemplate"]["spec"]["template"]["spec"],
    ):
        assert names(spec, "initContainers") == ["meshwork-init", "meshwork-proxy"]
    assert deploy["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["port"] == 15020
    original = list(yaml.safe_load_all(MANIFESTS))
    assert service == original[1]
    assert debug == original[4]
    assert agent == original[5]
    assert 'Pod shop/debug: not injected: meshwork.io/inject is "false"' in errtext
    assert "Pod kube-system/agent: not injected: namespace kube-system is never injected" in errtext


def test_offline_injection_of_a_template_is_the_webhooks_injection_of_its_pod(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, docs, _ = run(tmp_path, MANIFESTS, capsys)
    template = next(yaml.safe_load_all(MANIFESTS))["spec"]["template"]
    webhook = inject_pod(
        template, InjectionSettings(namespace_labels=lambda ns: {"meshwork.io/inject": "enabled"}), "shop"
    )
    assert isinstance(webhook, Injected)
    deploy = docs[0]
    assert isinstance(deploy, dict)
    assert deploy["spec"]["template"] == webhook.pod


def test_injecting_twice_changes_nothing_the_second_time(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, once, _ = run(tmp_path, MANIFESTS, capsys)
    _, twice, errtext = run(tmp_path, yaml.safe_dump_all(once), capsys)
    assert twice == once
    assert "Deployment shop/web: not injected: already injected" in errtext


def test_a_bad_annotation_fails_with_the_document_and_field_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = MANIFESTS.replace(
        "metadata: {labels: {app: web}}",
        "metadata: {labels: {app: web}, annotations: {meshwork.io/proxy-memory: lots}}",
    )
    code, _, errtext = run(tmp_path, bad, capsys)
    assert code == 1
    assert 'document 0: spec.template.metadata.annotations["meshwork.io/proxy-memory"]' in errtext
    assert "Deployment shop/web" in errtext


def test_broken_yaml_and_a_missing_file_are_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, errtext = run(tmp_path, "kind: Pod\n  spec: [", capsys)
    assert code == 1
    assert "not valid YAML" in errtext
    assert main(["inject", "-f", str(tmp_path / "missing.yaml")]) == 1
    assert "missing.yaml" in capsys.readouterr().err


def test_the_proxy_image_flag_sets_the_sidecar_image(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, docs, _ = run(tmp_path, MANIFESTS, capsys, "--proxy-image", "localhost/meshwork/proxy:v2")
    deploy = docs[0]
    assert isinstance(deploy, dict)
    images = {c["image"] for c in deploy["spec"]["template"]["spec"]["initContainers"]}
    assert images == {"localhost/meshwork/proxy:v2"}
