"""A snapshot with one type's resources added (what the control plane does with a proxy's two secrets) equals the
snapshot built from all the items, in resources and versions, whatever versions were computed before."""

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
