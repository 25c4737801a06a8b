"""The trust bundle: an ordered set of roots, PEM-concatenated, able to hold two roots during a rotation."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cryptography import x509

from xds_server.ca import SpiffeId, TrustBundle, create_root, fingerprint
from xds_server.errors import InvalidCaMaterial

T0 = datetime(2031, 3, 1, tzinfo=UTC)
OLD = create_root("mesh.example", now=T0)
NEW = create_root("mesh.example", now=T0)


def test_a_bundle_keeps_its_roots_in_order_without_duplicates() -> None:
    bundle = TrustBundle.of(OLD.certificate, NEW.certificate, OLD.certificate)
    assert bundle.roots == (OLD.certificate, NEW.certificate)
    assert len(bundle) == 2
    assert list(bundle) == [OLD.certificate, NEW.certificate]
    assert bundle.fingerprints == (fingerprint(OLD.certificate), fingerprint(NEW.certificate))


def test_the_pem_output_is_the_roots_concatenated_and_parses_back() -> None:
    bundle = TrustBundle.of(OLD.certificate, NEW.certificate)
    assert bundle.to_pem() == OLD.certificate_pem + NEW.certificate_pem
    assert x509.load_pem_x509_certificates(bundle.to_pem()) == [OLD.certificate, NEW.certificate]
    assert TrustBundle.from_pem(bundle.to_pem()) == bundle


def test_adding_and_removing_roots_gives_new_bundles() -> None:
    one = TrustBundle.of(OLD.certificate)
    two = one.with_root(NEW.certificate)
    assert one.roots == (OLD.certificate,)
    assert two.roots == (OLD.certificate, NEW.certificate)
    assert two.with_root(NEW.certificate) == two
    assert two.without_root(OLD.certificate).roots == (NEW.certificate,)
    assert OLD.certificate in two
    assert OLD.certificate not in two.without_root(OLD.certificate)


def test_the_version_is_a_content_hash() -> None:
    a = TrustBundle.of(OLD.certificate, NEW.certificate)
    assert a.version == TrustBundle.from_pem(a.to_pem()).version
    assert a.version != TrustBundle.of(OLD.certificate).version
    assert a.version != TrustBundle.of(NEW.certificate, OLD.certificate).version


def test_a_leaf_cannot_be_a_trust_anchor() -> None:
    leaf = OLD.issue_keypair(SpiffeId("mesh.example", "a", "b"), now=T0).certificate
    with pytest.raises(InvalidCaMaterial, match="is not a CA certificate; a trust bundle holds roots only"):
        TrustBundle.of(leaf)


def test_a_duplicate_root_given_directly_is_refused() -> None:
    with pytest.raises(InvalidCaMaterial, match="appears twice"):
        TrustBundle((OLD.certificate, OLD.certificate))
