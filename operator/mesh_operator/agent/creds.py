"""The sidecar's xDS client credentials on disk, and the file-based SDS that lets Envoy reload them.

Used by the pod agent and by local mode's sidecars alike. The three files change together, atomically, as
Kubernetes' atomic writer does and Envoy's ``watched_directory`` expects: a new generation directory ``..gen-N`` is
written in full, then the ``..data`` symlink is swapped to it by one rename; ``cert.pem``, ``key.pem`` and
``ca.pem`` are fixed symlinks through ``..data``. Envoy reads them through two SDS files (``path_config_source``
with a ``watched_directory``) and re-reads them on the swap, so a renewal never restarts Envoy. Plain ``filename``
data sources in a static cluster are read once: a renewed file would only be seen by a new Envoy (and replacing
files one by one would leave it a moment with a new certificate and the old key)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

CERT_SECRET = "xds-client-certificate"
CA_SECRET = "xds-trust-bundle"
_SECRET = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"


def new_generation(creds: Path, tag: str) -> Path:
    """An empty, owner-only generation directory to write the next credentials into."""
    creds.mkdir(mode=0o700, parents=True, exist_ok=True)
    gen = creds / f"..gen-{tag}"
    gen.mkdir(mode=0o700)
    return gen


def publish(creds: Path, gen: Path) -> None:
    """Point ``creds/..data`` at ``gen`` with one atomic rename, then drop older generations."""
    tmp = creds / "..data_tmp"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(gen.name)
    os.replace(tmp, creds / "..data")
    for name in ("cert.pem", "key.pem", "ca.pem"):
        link = creds / name
        if not link.is_symlink():
            link.unlink(missing_ok=True)  # a plain file from an older layout
            link.symlink_to(f"..data/{name}")
    for old in creds.glob("..gen-*"):
        if old != gen:
            for f in old.iterdir():
                f.unlink()
            old.rmdir()


def sds_config(work_dir: Path, creds: Path, name: str) -> dict[str, Any]:
    """An SDS secret config read from ``work_dir/sds-<name>.json``, reloaded when ``creds`` changes."""
    path = str(work_dir / f"sds-{name}.json")
    source = {"path_config_source": {"path": path, "watched_directory": {"path": str(creds)}}}
    return {"name": name, "sds_config": {**source, "resource_api_version": "V3"}}


def sds_files(work_dir: Path, creds: Path) -> dict[Path, dict[str, Any]]:
    """The two SDS files (path -> content) :func:`sds_config` refers to; they point at the credential links."""
    cert = {
        "@type": _SECRET,
        "name": CERT_SECRET,
        "tls_certificate": {
            "certificate_chain": {"filename": str(creds / "cert.pem")},
            "private_key": {"filename": str(creds / "key.pem")},
        },
    }
    trusted = {"trusted_ca": {"filename": str(creds / "ca.pem")}}
    ca = {"@type": _SECRET, "name": CA_SECRET, "validation_context": trusted}
    return {
        work_dir / f"sds-{CERT_SECRET}.json": {"resources": [cert]},
        work_dir / f"sds-{CA_SECRET}.json": {"resources": [ca]},
    }


def client_tls_context(work_dir: Path, creds: Path, control_plane_id: str) -> dict[str, Any]:
    """The xDS cluster's ``common_tls_context``: the client certificate and the trust bundle from the SDS files,
    and the control plane's SPIFFE ID checked."""
    return {
        "tls_params": {"tls_minimum_protocol_version": "TLSv1_2"},
        "alpn_protocols": ["h2"],
        "tls_certificate_sds_secret_configs": [sds_config(work_dir, creds, CERT_SECRET)],
        "combined_validation_context": {
            "default_validation_context": {
                "match_typed_subject_alt_names": [{"san_type": "URI", "matcher": {"exact": control_plane_id}}]
            },
            "validation_context_sds_secret_config": sds_config(work_dir, creds, CA_SECRET),
        },
    }
