"""Helpers of the cluster tier: the images of `make images` imported into the cluster, one-shot pods."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from mesh_operator.testing import cache_dir
from mesh_operator.testing.cluster import Cluster, ClusterError


def _images_dir() -> Path:
    env = os.environ.get("MESHWORK_IMAGES_CACHE")
    return Path(env) if env else cache_dir().parent / "images"


def import_images(cluster: Cluster) -> dict[str, str]:
    """control-plane and sidecar imported into the cluster's containerd; name -> image reference."""
    refs = {}
    for name in ("control-plane", "sidecar"):
        archive, ref = _images_dir() / f"{name}.oci.tar", _images_dir() / f"{name}.ref"
        if not (archive.is_file() and ref.is_file()):
            reason = f"{archive} missing: run `make images`"
            if os.environ.get("CI") == "true":
                pytest.fail(f"CI=true requires the images: {reason}", pytrace=False)
            pytest.skip(reason)
        image = ref.read_text().strip()
        cluster.import_image(archive, image.rsplit(":", 1)[0])
        refs[name] = image
    return refs


def run_pod(cluster: Cluster, ns: str, name: str, image: str, command: list[str], **spec: Any) -> tuple[str, str]:
    """Run a one-shot pod to completion; returns (phase, logs)."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "main", "image": image, "imagePullPolicy": "Never", "command": command}],
            **spec,
        },
    }
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(pod))
    deadline = time.monotonic() + 120
    phase = ""
    while time.monotonic() < deadline:
        phase = cluster.kubectl("get", "pod", name, "-n", ns, "-o", "jsonpath={.status.phase}").strip()
        if phase in ("Succeeded", "Failed"):
            break
        time.sleep(0.5)
    else:
        described = cluster.kubectl("describe", "pod", name, "-n", ns, check=False)
        raise ClusterError(f"pod {name} still {phase!r} after 120s:\n{described[-3000:]}")
    return phase, cluster.kubectl("logs", name, "-n", ns)
