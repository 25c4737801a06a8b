"""Key material never shows up in the repr or str of any CA object."""

from __future__ import annotations

from datetime import UTC, datetime

from xds_server.ca import IssuedKeypair, Issuer, KeyAlgorithm, SpiffeId, create_intermediate, create_root
from xds_server.ca.keys import PrivateKey, private_key_pem

T0 = datetime(2031, 3, 1, tzinfo=UTC)
WEB = SpiffeId("mesh.example", "shop", "web")


def secrets_of(key: PrivateKey) -> list[str]:
    """Fragments that would betray the key: its PEM body (in pieces), its private number in decimal and hex."""
    pem = private_key_pem(key).decode()
    body = "".join(pem.splitlines()[1:-1])
    numbers = key.private_numbers()
    value = getattr(numbers, "private_value", None) or getattr(numbers, "d", None)
    assert isinstance(value, int)
    return ["PRIVATE KEY", str(value), f"{value:x}", *(body[i : i + 12] for i in range(0, len(body) - 12, 12))]


def assert_no_key_in(obj: object, key: PrivateKey) -> None:
    for text in (repr(obj), str(obj), f"{obj}", f"{obj!r}"):
        for fragment in secrets_of(key):
            assert fragment not in text


def test_no_issuer_shows_its_key() -> None:
    for algorithm in (KeyAlgorithm.EC_P256, KeyAlgorithm.RSA_2048):
        root = create_root("mesh.example", now=T0, key_algorithm=algorithm)
        inter = create_intermediate(root, now=T0)
        for issuer in (root, inter):
            assert isinstance(issuer, Issuer)
            assert_no_key_in(issuer, issuer.key)
            assert "key=" not in repr(issuer)


def test_no_issued_keypair_shows_its_key() -> None:
    root = create_root("mesh.example", now=T0)
    for algorithm in (KeyAlgorithm.EC_P384, KeyAlgorithm.RSA_2048):
        issued = root.issue_keypair(WEB, key_algorithm=algorithm, now=T0)
        assert isinstance(issued, IssuedKeypair)
        assert_no_key_in(issued, issued.private_key)
        assert "private_key" not in repr(issued)
        assert WEB.uri in repr(issued)  # the repr is still useful


def test_equality_of_issuers_does_not_depend_on_key_objects() -> None:
    root = create_root("mesh.example", now=T0)
    assert root == Issuer(root.certificate, root.key, root.trust_domain)
