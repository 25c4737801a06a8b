"""A snapshot with one type's resources added or replaced (what the control plane does with a proxy's two secrets, what
an incremental stage 2 does) equals the snapshot built from all the items, in resources and versions, whatever versions
were computed before."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from xds_server.snapshot import CLUSTER, ENDPOINT, LISTENER, SECRET, TYPE_ORDER, CachedResource, Snapshot

_types = st.sampled_from([CLUSTER, ENDPOINT, LISTENER, SECRET])
_items = st.lists(st.tuples(_types, st.sampled_from([f"r{i}" for i in range(8)]), st.binary(max_size=4)), max_size=20)


@settings(max_examples=200, deadline=None)
@given(base=_items, added=_items, computed=st.lists(st.sampled_from(TYPE_ORDER), max_size=5))
def test_a_snapshot_with_a_type_added_equals_the_snapshot_built_from_all_the_items(
    base: list[tuple[str, str, bytes]], added: list[tuple[str, str, bytes]], computed: list[str]
) -> None:
    before = [CachedResource.of(t, n, b) for t, n, b in base]
    secrets = {n: CachedResource.of(SECRET, n, b) for _, n, b in added}
    snap = Snapshot.from_resources(before)
    for t in computed:  # versions cached before (carried over for the other types)
        snap.type_version(t)
    got = snap.with_type(SECRET, secrets)
    want = Snapshot.from_resources([*before, *secrets.values()])
    assert got == want
    for t in TYPE_ORDER:
        assert list(got.of_type(t).items()) == list(want.of_type(t).items())
        assert got.type_version(t) == want.type_version(t)
    assert got.version == want.version


_names = st.sampled_from([f"r{i}" for i in range(8)])


@settings(max_examples=200, deadline=None)
@given(
    base=_items,
    rounds=st.lists(st.tuples(_types, st.lists(st.tuples(_names, st.binary(max_size=4)), max_size=6)), max_size=8),
)
def test_versions_carried_through_a_chain_of_replacements_equal_the_versions_computed_anew(
    base: list[tuple[str, str, bytes]], rounds: list[tuple[str, list[tuple[str, bytes]]]]
) -> None:
    snap = Snapshot.from_resources([CachedResource.of(t, n, b) for t, n, b in base])
    for t in TYPE_ORDER:  # every sum known: each replacement below updates its type's sum by the change alone
        snap.type_version(t)
    for type_url, changes in rounds:
        snap = snap.replacing(type_url, {n: CachedResource.of(type_url, n, b) for n, b in changes})
        anew = Snapshot.from_resources([r for t in TYPE_ORDER for r in snap.of_type(t).values()])
        assert [snap.type_version(t) for t in TYPE_ORDER] == [anew.type_version(t) for t in TYPE_ORDER]
        assert snap.version == anew.version


def test_a_type_version_changes_when_one_resource_changes_and_not_with_the_order_of_the_resources() -> None:
    items = [CachedResource.of(CLUSTER, f"c{i}", bytes([i])) for i in range(5)]
    forward, backward = Snapshot.from_resources(items), Snapshot.from_resources(reversed(items))
    assert forward.type_version(CLUSTER) == backward.type_version(CLUSTER)
    edited = Snapshot.from_resources([*items[:2], CachedResource.of(CLUSTER, "c2", b"x"), *items[3:]])
    fewer = Snapshot.from_resources(items[:4])
    versions = {forward.type_version(CLUSTER), edited.type_version(CLUSTER), fewer.type_version(CLUSTER)}
    assert len(versions) == 3
