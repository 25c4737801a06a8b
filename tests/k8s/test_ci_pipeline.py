"""The CI pipeline on a real kube-apiserver with the operator and Envoy stand-ins for the pods: the shell script of
docs/ci-pipelines.md (pull request: validate, analyse, diff against the cluster; merge: apply --wait), and
``meshctl apply --wait`` failing with the proxy's name and Envoy's error when a proxy rejects the config."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mesh_operator.testing import TestControlPlane
from mesh_operator.testing.kubemesh import KubeMesh
from meshctl.cli import main
from tests.k8s.helpers import REPO
from tests.k8s.operator_support import example_mesh, example_policies, fully_applied, kube_mesh

__all__ = ["kube_mesh"]

SCRIPT = REPO / "scripts" / "ci-pipeline.sh"


def _pipeline(stage: str, policies: Path, plane: TestControlPlane, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "MESHCTL": f"{sys.executable} -m meshctl",
        "KUBECONFIG": str(plane.kubeconfig_path),
        "DIFF_OUT": str(tmp_path / "diff.txt"),
        "TIMEOUT": "90s",
    }
    return subprocess.run(
        ["bash", str(SCRIPT), stage, str(policies)], env=env, cwd=REPO, capture_output=True, text=True, timeout=180
    )


def test_the_pipeline_script_diffs_on_a_pull_request_and_applies_until_every_proxy_acked_on_merge(
    kube_mesh: KubeMesh, k8s_control_plane: TestControlPlane, tmp_path: Path
) -> None:
    mesh = kube_mesh
    example_mesh(mesh)
    op = mesh.start_operator()
    mesh.wait_connected(op)
    policies = tmp_path / "policies"
    policies.mkdir()
    docs = example_policies(mesh.namespace)
    for doc in docs:
        (policies / f"{doc['kind'].lower()}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))

    pr = _pipeline("pull-request", policies, k8s_control_plane, tmp_path)
    assert pr.returncode == 0, pr.stdout + pr.stderr
    diff = (tmp_path / "diff.txt").read_text()
    # The example's policies reach backend's three instances and its three callers: all 6 proxies.
    assert (
        f"blast radius: 6 of 6 proxies in 1 namespace(s) ({mesh.namespace}); services: backend.{mesh.namespace}" in diff
    )
    assert f"<- AccessPolicy/{mesh.namespace}/backend" in diff
    assert "changes shown above" in pr.stdout

    merge = _pipeline("merge", policies, k8s_control_plane, tmp_path)
    assert merge.returncode == 0, merge.stdout + merge.stderr
    assert "in force" in merge.stdout
    # At the script's exit the operator's status already says every affected proxy ACKed each policy.
    for doc in docs:
        assert fully_applied(mesh.get_policy(doc["kind"], doc["metadata"]["name"])), doc["kind"]

    again = _pipeline("pull-request", policies, k8s_control_plane, tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert (tmp_path / "diff.txt").read_text().startswith("no change")


def test_apply_wait_on_a_cluster_fails_naming_the_proxy_that_rejected_it_and_envoys_error(
    kube_mesh: KubeMesh, k8s_control_plane: TestControlPlane, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mesh = kube_mesh
    # backend-2's inbound port is taken by another process: its Envoy cannot bind the listener and NACKs it.
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen(1)
        mesh.pod("caller", service_account="caller", upstreams=["backend"], serves=False)
        mesh.pod("backend-1", service_account="backend")
        mesh.pod("backend-2", service_account="backend", inbound_port=squatter.getsockname()[1])
        mesh.service("backend", ["backend-1", "backend-2"])
        op = mesh.start_operator()
        del op
        policy = tmp_path / "access.yaml"
        policy.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "meshwork.io/v1alpha1",
                    "kind": "AccessPolicy",
                    "metadata": {"name": "backend"},
                    "spec": {
                        "targetRef": {"name": "backend"},
                        "rules": [
                            {
                                "name": "callers",
                                "action": "Allow",
                                "from": [{"serviceAccount": {"namespace": mesh.namespace, "name": "caller"}}],
                            }
                        ],
                    },
                }
            )
        )
        kubeconfig = str(k8s_control_plane.kubeconfig_path)
        args = ["apply", "-f", str(policy), "--kubeconfig", kubeconfig, "-n", mesh.namespace, "--wait"]
        assert main([*args, "--timeout", "90s"]) == 1
        captured = capsys.readouterr()
        assert f"accesspolicy/backend applied in {mesh.namespace}" in captured.out
        assert f"AccessPolicy/{mesh.namespace}/backend rejected by {mesh.namespace}/backend-2" in captured.err
        assert "address already in use" in captured.err.lower()
        # Server-side apply with our field manager: the object says who owns its fields.
        managers = {m["manager"] for m in mesh.get_policy("AccessPolicy", "backend")["metadata"]["managedFields"]}
        assert "meshctl" in managers


def test_an_unreachable_cluster_is_a_one_line_error_for_every_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "gone", "cluster": {"server": f"https://127.0.0.1:{port}"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "gone", "context": {"cluster": "gone", "user": "u"}}],
                "current-context": "gone",
            }
        )
    )
    policy = REPO / "examples" / "mesh" / "backend-access.yaml"
    k = ["--kubeconfig", str(kubeconfig)]
    for argv in (
        ["apply", "-f", str(policy), *k],
        ["diff", "-f", str(policy), "--against", "cluster", *k],
        ["check", "-f", str(policy), *k],
        ["check", *k],
    ):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "cannot reach the cluster" in err and "Traceback" not in err, (argv, err)


def test_apply_wait_on_a_cluster_times_out_naming_the_proxies_still_behind(
    kube_mesh: KubeMesh, k8s_control_plane: TestControlPlane, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mesh = kube_mesh
    mesh.pod("caller", service_account="caller", upstreams=["backend"], serves=False)
    mesh.pod("backend-1", service_account="backend")
    mesh.service("backend", ["backend-1"])
    op = mesh.start_operator()
    mesh.wait_connected(op)
    policy = tmp_path / "traffic.yaml"
    policy.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "meshwork.io/v1alpha1",
                "kind": "TrafficPolicy",
                "metadata": {"name": "backend"},
                "spec": {"targetRef": {"name": "backend"}, "timeouts": {"request": "3s"}},
            }
        )
    )
    envoy = mesh.pods["caller"].envoy
    assert envoy is not None
    os.kill(envoy.pid, signal.SIGSTOP)  # the caller's Envoy cannot ACK the new routes
    try:
        kubeconfig = str(k8s_control_plane.kubeconfig_path)
        admin = f"http://127.0.0.1:{op.admin_port}"
        argv = ["apply", "-f", str(policy), "--kubeconfig", kubeconfig, "-n", mesh.namespace, "--admin", admin]
        assert main([*argv, "--wait", "--timeout", "15s"]) == 1
    finally:
        os.kill(envoy.pid, signal.SIGCONT)
    err = capsys.readouterr().err
    assert "timed out after 15s" in err
    behind = [line.removeprefix("meshctl: still behind: ") for line in err.splitlines() if "still behind" in line]
    assert behind[0] == f"TrafficPolicy/{mesh.namespace}/backend: applied by 0 of 1 proxies", err
    assert [b.split()[0] for b in behind[1:]] == [f"{mesh.namespace}/caller"], err
