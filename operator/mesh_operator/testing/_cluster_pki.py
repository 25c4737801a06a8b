"""Certificates of the single-node cluster: one CA, the apiserver's and kubelet's serving certs, client certs."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mesh_operator.testing._cluster_config import API_SERVICE_IP, NODE_NAME
from mesh_operator.testing._cluster_host import NODE_IP
from mesh_operator.testing._kube_support import _name, _new_ca, _new_leaf, _write_cert, _write_key

#: file stem -> (common name, organization) of the client certificates.
CLIENTS = {
    "admin": ("meshwork-admin", "system:masters"),
    "apiserver-kubelet-client": ("kube-apiserver-kubelet-client", "system:masters"),
    "controller-manager": ("system:kube-controller-manager", None),
    "scheduler": ("system:kube-scheduler", None),
    "kubelet-client": (f"system:node:{NODE_NAME}", "system:nodes"),
    "kube-proxy": ("system:kube-proxy", None),
    "coredns": ("system:coredns", None),
}


def generate(directory: Path) -> None:
    """Write ca.{crt,key}, apiserver.*, kubelet.* (serving), one pair per CLIENTS entry and sa.{key,pub}."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key, ca = _new_ca("meshwork-cluster-ca", now)
    _write_cert(directory / "ca.crt", ca)
    _write_key(directory / "ca.key", ca_key)

    names = (
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    )
    api_sans: list[x509.GeneralName] = [x509.DNSName(name) for name in names]
    api_sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ("127.0.0.1", NODE_IP, API_SERVICE_IP)]
    key, cert = _new_leaf(ca_key, ca, _name("kube-apiserver"), now, server_sans=api_sans)
    _write_cert(directory / "apiserver.crt", cert)
    _write_key(directory / "apiserver.key", key)

    kubelet_sans: list[x509.GeneralName] = [x509.DNSName(NODE_NAME), x509.IPAddress(ipaddress.ip_address(NODE_IP))]
    key, cert = _new_leaf(ca_key, ca, _name(f"system:node:{NODE_NAME}", "system:nodes"), now, server_sans=kubelet_sans)
    _write_cert(directory / "kubelet.crt", cert)
    _write_key(directory / "kubelet.key", key)

    for stem, (cn, org) in CLIENTS.items():
        key, cert = _new_leaf(ca_key, ca, _name(cn, org), now, client=True)
        _write_cert(directory / f"{stem}.crt", cert)
        _write_key(directory / f"{stem}.key", key)

    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_key(directory / "sa.key", sa_key)
    (directory / "sa.pub").write_bytes(
        sa_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
