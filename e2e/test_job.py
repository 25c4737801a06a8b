"""Story: a batch Job in the mesh runs to completion. With a native sidecar (an init container with
``restartPolicy: Always``) the proxy starts before the job's container and is stopped after it, so the Job
completes; its call went through the mesh (mTLS to a meshed backend)."""

from __future__ import annotations

import json

from e2e.kit import Mesh, Namespace, account, apply, deployment, get_json, pods, rollout, service, wait

JOB = """
import json, sys, urllib.request
with urllib.request.urlopen("http://backend:8080/anything", timeout=10) as r:
    body = json.load(r)
print(json.dumps({"status": r.status, "client_cert": body["client_cert"]}))
"""


def test_a_job_in_the_mesh_calls_a_meshed_service_and_completes(mesh: Mesh) -> None:
    ns = Namespace(mesh.cluster, "batch")
    try:
        image = mesh.images["control-plane"]
        apply(
            mesh.cluster,
            ns.name,
            [account("backend"), service("backend"), _echo(), deployment("backend", image, app="backend")],
        )
        rollout(mesh.cluster, ns.name, "backend")
        job = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "report"},
            "spec": {
                "backoffLimit": 0,
                "activeDeadlineSeconds": 240,
                "template": {
                    "metadata": {"labels": {"app": "report"}},
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [
                            {
                                "name": "app",
                                "image": image,
                                "imagePullPolicy": "IfNotPresent",
                                "command": ["python3", "-c", JOB],
                                "resources": {"requests": {"cpu": "5m", "memory": "24Mi"}},
                            }
                        ],
                    },
                },
            },
        }
        apply(mesh.cluster, ns.name, [job])
        done = wait(
            "the Job complete",
            lambda: (
                (s := get_json(mesh.cluster, "job", "report", "-n", ns.name).get("status") or {}).get("succeeded") == 1
                or s.get("failed")
            ),
            240,
            interval=2,
        )
        assert done is True, get_json(mesh.cluster, "job", "report", "-n", ns.name)["status"]
        (pod,) = pods(mesh.cluster, ns.name, "app=report")
        proxy = next(c for c in pod["spec"]["initContainers"] if c["name"] == "meshwork-proxy")
        assert proxy["restartPolicy"] == "Always"  # a native sidecar: it did not keep the Job from completing
        out = json.loads(mesh.cluster.kubectl("logs", "-n", ns.name, pod["metadata"]["name"], "-c", "app").strip())
        assert out["status"] == 200
        assert f"spiffe://cluster.local/ns/{ns.name}/sa/default" in out["client_cert"]
    finally:
        ns.delete()


def _echo() -> dict[str, object]:
    from e2e.kit import echo_configmap

    return echo_configmap()
