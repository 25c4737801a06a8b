"""Real Envoy accepts what the translation generates (``envoy --mode validate``): catches what Envoy would NACK."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.unit import ir_samples as s
from xds_server import ir
from xds_server.ca import SpiffeId, create_root
from xds_server.envoy_binary import envoy_path, validate_config
from xds_server.errors import EnvoyNotFound
from xds_server.translate import ads_bootstrap, render_bootstrap, translate_proxy

pytestmark = pytest.mark.envoy


@pytest.fixture(scope="module", autouse=True)
def _envoy() -> None:
    try:
        envoy_path()
    except EnvoyNotFound as e:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the envoy tier is required in CI: {e}")
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def throwaway_pem() -> tuple[str, str]:
    """A certificate for the node's SPIFFE ID from a throwaway mesh CA, used for nothing but validation."""
    identity = SpiffeId.parse(s.NODE.spiffe_id)
    leaf = create_root(identity.trust_domain).issue_keypair(identity)
    return leaf.chain_pem.decode(), leaf.private_key_pem.decode()


def _validate(doc: dict[str, object], tmp_path: Path) -> None:
    path = tmp_path / "bootstrap.json"
    path.write_text(json.dumps(doc, indent=1))
    result = validate_config(path)
    assert result.ok, result.output


@pytest.mark.parametrize(
    "cfg",
    [s.RICH, s.RICH_TEXT_LOG, s.MINIMAL, s.mesh_of(20)],
    ids=["rich-json-log", "rich-text-log", "minimal", "mesh20"],
)
def test_envoy_accepts_the_static_bootstrap_of_a_translated_proxy(
    cfg: ir.ProxyConfig, throwaway_pem: tuple[str, str], tmp_path: Path
) -> None:
    cert, key = throwaway_pem
    doc = render_bootstrap(cfg, translate_proxy(cfg), cert_chain_pem=cert, private_key_pem=key, trust_bundle_pem=cert)
    _validate(doc, tmp_path)


def test_envoy_accepts_secrets_given_as_pem_file_paths(throwaway_pem: tuple[str, str], tmp_path: Path) -> None:
    cert, key = throwaway_pem
    (tmp_path / "cert.pem").write_text(cert)
    (tmp_path / "key.pem").write_text(key)
    doc = render_bootstrap(
        s.RICH,
        translate_proxy(s.RICH),
        cert_chain_path=str(tmp_path / "cert.pem"),
        private_key_path=str(tmp_path / "key.pem"),
        trust_bundle_path=str(tmp_path / "cert.pem"),
    )
    _validate(doc, tmp_path)


def test_envoy_accepts_the_ads_bootstrap_of_a_live_sidecar(tmp_path: Path) -> None:
    _validate(ads_bootstrap(s.NODE, "127.0.0.1", 15010, 15000), tmp_path)
    _validate(ads_bootstrap(s.NODE, "xds.meshwork-system.svc", 15010, 15000), tmp_path)


def test_envoy_accepts_the_ads_bootstrap_with_mtls_to_the_xds_server(
    throwaway_pem: tuple[str, str], tmp_path: Path
) -> None:
    cert, key = throwaway_pem
    for name, pem in (("cert.pem", cert), ("key.pem", key), ("ca.pem", cert)):
        (tmp_path / name).write_text(pem)
    doc = ads_bootstrap(
        s.NODE,
        "127.0.0.1",
        15012,
        cert_chain_path=str(tmp_path / "cert.pem"),
        private_key_path=str(tmp_path / "key.pem"),
        ca_path=str(tmp_path / "ca.pem"),
        server_name="xds.meshwork-system.svc",
        server_spiffe_id="spiffe://cluster.local/ns/meshwork-system/sa/control-plane",
        watch_credentials=True,
        delta=True,
    )
    ctx = doc["static_resources"]["clusters"][0]["transport_socket"]["typed_config"]["common_tls_context"]
    assert ctx["validation_context"]["match_typed_subject_alt_names"][0]["san_type"] == "URI"
    _validate(doc, tmp_path)
