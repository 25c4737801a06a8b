"""SPIFFE IDs: ``spiffe://<trust-domain>/ns/<ns>/sa/<sa>``, strictly validated with errors that say what is wrong."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xds_server.ca import SpiffeId, validate_trust_domain
from xds_server.errors import InvalidRequest, InvalidSpiffeId

label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", fullmatch=True)
subdomain = st.lists(label, min_size=1, max_size=3).map(".".join).filter(lambda s: len(s) <= 253)
trust_domain = st.from_regex(r"[a-z0-9._-]{1,60}", fullmatch=True)


@given(trust_domain, label, subdomain)
def test_formatting_then_parsing_gives_back_the_same_identity(td: str, ns: str, sa: str) -> None:
    identity = SpiffeId(td, ns, sa)
    assert str(identity) == identity.uri == f"spiffe://{td}/ns/{ns}/sa/{sa}"
    assert SpiffeId.parse(str(identity)) == identity


@given(st.text(max_size=300))
def test_parsing_any_text_either_succeeds_or_raises_invalid_spiffe_id(text: str) -> None:
    try:
        identity = SpiffeId.parse(text)
    except InvalidSpiffeId:
        return
    assert str(identity) == text


@given(st.text(max_size=80))
def test_parsing_text_after_the_scheme_either_succeeds_or_raises_invalid_spiffe_id(rest: str) -> None:
    try:
        SpiffeId.parse("spiffe://" + rest)
    except InvalidSpiffeId:
        pass


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("https://td/ns/a/sa/b", "does not start with 'spiffe://'"),
        ("SPIFFE://td/ns/a/sa/b", "does not start with 'spiffe://'"),
        ("spiffe://td", "has no path"),
        ("spiffe:///ns/a/sa/b", "the trust domain is empty"),
        ("spiffe://Example.org/ns/a/sa/b", r"characters outside \[a-z0-9._-\]: 'E'"),
        ("spiffe://td:8443/ns/a/sa/b", "characters outside"),
        ("spiffe://user@td/ns/a/sa/b", "characters outside"),
        ("spiffe://td/ns/a/sa/b/", "expected exactly /ns/<namespace>/sa/<service-account>"),
        ("spiffe://td/ns/a/sa/b/extra", "expected exactly"),
        ("spiffe://td/ns/a", "expected exactly"),
        ("spiffe://td/sa/b/ns/a", "expected exactly"),
        ("spiffe://td//ns/a/sa/b", "expected exactly"),
        ("spiffe://td/ns//sa/b", "the namespace is empty"),
        ("spiffe://td/ns/a/sa/", "the service account is empty"),
        ("spiffe://td/ns/Default/sa/b", "namespace 'Default' is not a DNS-1123 label"),
        ("spiffe://td/ns/a.b/sa/b", "is not a DNS-1123 label"),
        ("spiffe://td/ns/-a/sa/b", "is not a DNS-1123 label"),
        ("spiffe://td/ns/a/sa/b_c", "service account 'b_c' is not a DNS-1123 subdomain"),
        ("spiffe://td/ns/a/sa/b..c", "is not a DNS-1123 subdomain"),
        (f"spiffe://td/ns/{'a' * 64}/sa/b", r"64 characters long \(at most 63\)"),
        (f"spiffe://td/ns/a/sa/{'b' * 254}", r"254 characters long \(at most 253\)"),
        (f"spiffe://{'t' * 256}/ns/a/sa/b", "at most 255"),
        ("spiffe://td/ns/a/sa/b?x=1", "has a query"),
        ("spiffe://td/ns/a/sa/b#frag", "has a fragment"),
        ("spiffe://td/ns/%61/sa/b", "percent-encoding"),
        ("spiffe://td/ns/a/sa/b\n", "is not a DNS-1123 subdomain"),
        ("spiffe://td/ns/á/sa/b", "is not a DNS-1123 label"),
        ("spiffe://" + "a" * 3000, "at most 2048"),
    ],
)
def test_invalid_spiffe_ids_are_refused_with_a_message_saying_why(uri: str, message: str) -> None:
    with pytest.raises(InvalidSpiffeId, match=message):
        SpiffeId.parse(uri)


def test_an_invalid_spiffe_id_is_an_invalid_request() -> None:
    assert issubclass(InvalidSpiffeId, InvalidRequest)


def test_constructing_an_identity_validates_it_too() -> None:
    with pytest.raises(InvalidSpiffeId, match="namespace"):
        SpiffeId("td", "UPPER", "sa")
    with pytest.raises(InvalidSpiffeId, match="trust domain"):
        SpiffeId("", "ns", "sa")


def test_parsing_a_non_string_is_refused() -> None:
    with pytest.raises(InvalidSpiffeId, match="must be a string, got bytes"):
        SpiffeId.parse(b"spiffe://td/ns/a/sa/b")  # type: ignore[arg-type]


def test_a_trust_domain_is_validated_on_its_own() -> None:
    assert validate_trust_domain("cluster.local") == "cluster.local"
    with pytest.raises(InvalidSpiffeId, match="lowercase only"):
        validate_trust_domain("Cluster.local")


def test_identities_sort_and_compare_as_values() -> None:
    a, b = SpiffeId("td", "a", "x"), SpiffeId("td", "b", "x")
    assert sorted([b, a]) == [a, b]
    assert len({a, SpiffeId.parse(str(a))}) == 1
