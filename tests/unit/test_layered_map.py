"""A layered map reads exactly like the dict it stands for, after any sequence of replacements, additions and
removals (it is what a large proxy's snapshot types and resource provenance become after a change)."""

from __future__ import annotations

from types import MappingProxyType

from hypothesis import given, settings
from hypothesis import strategies as st

from xds_server.layered import GONE, Layered

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
