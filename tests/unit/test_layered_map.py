"""A layered map reads exactly like the dict it stands for, after any sequence of replacements, additions and
removals (it is what a large proxy's snapshot types and resource provenance become after a change); a layered
sequence reads like its tuple (a large proxy's listeners and clusters, the state's policies); and the delta they
carry covers every real difference."""

from __future__ import annotations

from collections.abc import Sequence
from operator import add
from types import MappingProxyType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xds_server.layered import GONE, Layered, LayeredSeq, changed_since, key_container, positions_since

changes = st.lists(
    st.dictionaries(st.integers(0, 30), st.one_of(st.integers(), st.just(GONE)), max_size=8), max_size=20
)


@settings(max_examples=60, deadline=None)
@given(size=st.integers(0, 25), steps=changes)
def test_a_layered_map_has_the_items_in_the_order_of_the_dict_it_stands_for(size: int, steps: list[dict]) -> None:
    want = {k: -k for k in range(size)}
    got = MappingProxyType(dict(want))
    for change in steps:
        got = Layered.over(got, change)
        for k, v in change.items():
            if v is GONE:
                want.pop(k, None)
            else:
                want[k] = v
        assert list(got.items()) == list(want.items())
        assert list(got) == list(want) and list(got.values()) == list(want.values())
        assert len(got) == len(want)
        assert got == want and want == got
        for k in range(-1, 32):
            assert (k in got) == (k in want)
            assert got.get(k, "none") == want.get(k, "none")


def test_a_replacement_of_one_key_in_a_large_map_shares_the_base_instead_of_copying_it() -> None:
    base = MappingProxyType({f"r{i}": i for i in range(10_000)})
    got = Layered.over(base, {"r5": -5})
    assert isinstance(got, Layered) and got._base is base  # no copy of the 10,000 entries
    assert got["r5"] == -5 and got["r6"] == 6 and list(got)[:7] == [f"r{i}" for i in range(7)]


seq_changes = st.lists(st.dictionaries(st.integers(0, 40), st.integers(), max_size=8), max_size=25)


@settings(max_examples=60, deadline=None)
@given(size=st.integers(1, 41), steps=seq_changes)
def test_a_layered_sequence_reads_compares_and_hashes_like_the_tuple_it_stands_for(
    size: int, steps: list[dict[int, int]]
) -> None:
    want = list(range(size))
    got: Sequence[int] = tuple(want)
    for change in steps:
        change = {i % size: v for i, v in change.items()}
        before = got
        got = LayeredSeq.over(got, change)
        for i, v in change.items():
            want[i] = v
        t = tuple(want)
        assert tuple(got) == t and list(reversed(got)) == list(reversed(t)) and len(got) == size
        assert got == t and t == got and (got != t) is False and hash(got) == hash(t)
        assert got != (*t, 0) and got != list(t)
        assert [got[i] for i in range(-size, size)] == [t[i] for i in range(-size, size)]
        assert got[1:3] == t[1:3] and add(got, (9,)) == (*t, 9) and add((9,), got) == (9, *t)
        # the positions it may differ in from the sequence it was layered on cover every real difference
        at = positions_since(before, got)
        if at is not None:
            assert {i for i in range(size) if before[i] is not got[i]} <= set(at)
    with pytest.raises(IndexError):
        got[size]
    with pytest.raises(IndexError):
        LayeredSeq.over(got, {size: 0})


def test_one_replacement_in_a_long_sequence_shares_the_tuple_and_names_its_position() -> None:
    base = tuple(range(60_000))
    one = LayeredSeq.over(base, {5: -5})
    two = LayeredSeq.over(one, {70: -70})
    assert isinstance(two, LayeredSeq) and two._base is base  # no copy of the 60,000 elements
    assert set(positions_since(base, one) or ()) == {5}
    assert set(positions_since(one, two) or ()) == {5, 70}  # (a superset: 5 is the same in both)
    assert positions_since(base, tuple(base)) is None  # unrelated sequences: no delta to read


def test_the_keys_a_layered_map_may_differ_in_cover_every_real_difference() -> None:
    base = MappingProxyType({f"s{i}": i for i in range(1_000)})
    one = Layered.over(base, {"s1": -1, "s2": GONE})
    two = Layered.over(one, {"new": 0})
    assert set(changed_since(base, one) or ()) == {"s1", "s2"}
    assert set(changed_since(one, two) or ()) == {"s1", "s2", "new"}
    assert changed_since(base, dict(base)) is None


@given(
    st.dictionaries(st.sampled_from("abcdefgh"), st.integers(), max_size=8),
    st.dictionaries(st.sampled_from("abcdefghij"), st.one_of(st.integers(), st.just(GONE)), max_size=6),
)
def test_membership_through_key_container_is_membership_in_the_layered_map(base, changes) -> None:
    layered = Layered.over(MappingProxyType(base), changes)
    container = key_container(layered)
    for key in "abcdefghijk":
        assert (key in container) == (key in layered)


def test_a_map_with_only_replacements_answers_membership_from_its_base() -> None:
    base = MappingProxyType({f"s{i}": i for i in range(100)})
    replaced = Layered.over(Layered.over(base, {"s1": -1}), {"s2": -2})
    assert key_container(replaced) is base  # C-speed `in`, no Python call per key
    added = Layered.over(base, {"new": 0})
    assert key_container(added) is added
