"""The content memo of :mod:`xds_server.encode` and its review: which small messages are looked up by content.

A message whose message-, list- and map-valued fields are all empty is a function of its scalar field values
(strings, numbers, enums, and the plain values of wrapped fields such as a Duration's timedelta), all hashable:
its bytes are looked up by the tuple of those values (built in C by ``itemgetter``), skipping the per-field work.
Retry policies, route matches, weighted cluster entries ... can repeat across the resources of a snapshot.
Bounded per class; cleared by ``clear_caches()``. Not for messages with message-valued maps (Struct, Metadata):
their key would need their values' bytes, i.e. all the work of encoding them (equal ones are shared by identity in
the translation instead), nor with a bytes field (an ``Any``: its key would hash the whole payload, and its bytes
are the payload plus a few). Whether a message's message, list and map fields are all empty is decided per
message at run time (the ``if`` of :func:`memo_lines`).

**Review** (wire6): a memo pays only if it hits. In the edge proxy every ``SocketAddress`` and weighted cluster
entry is unique (3,000 and 2,000 lookups, 0 hits), and a shared ``LbEndpoint`` never even reaches its memo (its
endpoint is set), yet each call paid the emptiness test, the key tuple, the probe, the insert and a second call.
So a memo counts its uses until :data:`REVIEW_AT` calls missed it (a miss, or a message with a non-empty
sub-message): then its class is reviewed once (:func:`review`): fewer than one hit per :data:`KEEP_RATIO` misses
and the class is recompiled *without* memo (:data:`NO_MEMO`: the field blocks are its entry, one call),
otherwise it is recompiled with the memo and no counting (:data:`KEPT`). Both are process-wide and survive
``clear_caches()`` (a property of the workload, as the compiled encoders are); bytes never depend on it. Its
parents keep their compiled code (a dropped class is not fused into them afterwards).
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any, Final

from xds_server._encode_plan import _BYTES, _FLOAT_TYPES, _MESSAGE, _Field

MEMO_FIELDS: Final = 24  # bigger messages (Cluster, Listener, ...) are rarely repeated whole
MEMO_MAX: Final = 16_384
MEMOS: list[dict[Any, bytes]] = []
#: calls that missed a class's memo before it is reviewed; a kept memo needs one hit per KEEP_RATIO misses
REVIEW_AT: Final = 2_048
KEEP_RATIO: Final = 3
NO_MEMO: set[type] = set()
KEPT: set[type] = set()


def is_message_map(f: _Field) -> bool:
    return f.map_kinds is not None and f.map_kinds[1][0] == _MESSAGE and f.map_kinds[1][3] is None


def is_scalar(f: _Field) -> bool:
    return f.map_kinds is None and not f.repeated and (f.kind != _MESSAGE or f.unwrap is not None)


def memo_possible(plan: tuple[_Field, ...]) -> bool:
    """Whether a class of this plan may look its messages up by content (unless its review dropped the memo)."""
    return len(plan) <= MEMO_FIELDS and not any(is_message_map(f) or f.kind == _BYTES for f in plan)


def review(cls: type, counts: list[int], recompile: Callable[[type], None]) -> None:
    """Decide once whether ``cls`` keeps its memo (``counts``: misses, hits), then ``recompile(cls)``."""
    if cls in NO_MEMO or cls in KEPT:  # already reviewed (a call of its old encoder still under way)
        return
    misses, hits = counts
    (NO_MEMO if hits * KEEP_RATIO < misses else KEPT).add(cls)
    recompile(cls)


def memo_lines(
    cls: type, plan: tuple[_Field, ...], env: dict[str, Any], recompile: Callable[[type], None]
) -> list[str] | None:
    """The entry of ``cls``'s encoder with its content memo (``full(msg, d)`` writes the fields), or None."""
    if cls in NO_MEMO or not memo_possible(plan):
        return None
    scalars = [f.name for f in plan if is_scalar(f)]
    maps = [f"tuple(d[{f.name!r}].items())" for f in plan if f.map_kinds is not None]
    empty = [
        f"d[{f.name!r}] is None" if f.kind == _MESSAGE and not f.repeated else f"not d[{f.name!r}]"
        for f in plan
        if not is_scalar(f) and f.map_kinds is None
    ]
    memo: dict[Any, bytes] = {}
    MEMOS.append(memo)
    env["M"], env["MEMO_MAX"] = memo, MEMO_MAX
    env["IG"] = operator.itemgetter(*scalars) if scalars else (lambda _d: ())
    # 0.0 == -0.0 (and their hashes agree) but their bytes differ: a float field's repr is part of the key
    floats = [f"repr(d[{f.name!r}])" for f in plan if is_scalar(f) and f.proto_type in _FLOAT_TYPES]
    parts = maps + floats
    key = "IG(d)" if not parts else "(IG(d), " + ", ".join(parts) + ")"
    counting = cls not in KEPT
    if counting:
        counts = [0, 0]
        env["MC"], env["REVIEW_AT"] = counts, REVIEW_AT
        env["REVIEW"] = lambda: review(cls, counts, recompile)
    missed = ["MC[0] += 1", "if MC[0] >= REVIEW_AT:", "    REVIEW()"] if counting else []
    return [
        "d = msg.__dict__",
        "if " + " and ".join([*empty, "not d['_unknown_fields']"]) + ":",
        f"    k = {key}",
        "    r = M.get(k)",
        "    if r is None:",
        "        r = full(msg, d)",
        "        if len(M) >= MEMO_MAX:",
        "            M.clear()",
        "        M[k] = r",
        *["        " + ln for ln in missed],
        *(["    else:", "        MC[1] += 1"] if counting else []),
        "    return r",
        *missed,
        "return full(msg, d)",
    ]
