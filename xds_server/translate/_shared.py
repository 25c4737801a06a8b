"""Shared sub-messages: equal parts of many resources built once per distinct content, serialized once.

In a mesh's snapshots most sub-messages repeat: the provenance ``Metadata`` of a service's routes and clusters,
a route action (the same split, timeout and retry policy on each of a policy's rules), the ADS ``ConfigSource``,
circuit breakers, upstream TLS, route matches, endpoints listed in a subset cluster and in the service's cluster
(the 1000-service edge proxy: 14,000 ``Metadata`` objects with 4,000 distinct contents, 6,000 route actions /
2,000, 4,000 endpoints / 2,000). A function decorated with :func:`shared` returns one message object per distinct
argument tuple and registers it with :func:`xds_server.encode.share`, so the encoder writes its bytes once and
finds them again by identity. The arguments are the IR values the message is built from (hashable, frozen).
Python's ``==`` (so a dict key) does not tell 1 from 1.0 from True, nor 0.0 from -0.0: where a float of the IR
reaches the message as a float, the caller adds its ``repr`` to the arguments (route mirrors' percentages,
retry budgets), so two messages that differ in bytes or in their proto-JSON never share an object.

Contract: a message returned here is shared by every resource that contains it and **must not be mutated**
(``tests/unit/test_serialize_shared.py`` checks the translation's output with
:func:`xds_server.encode.stale_shared`). Bounded; cleared with the other translation memos
(:func:`xds_server.translate.clear_caches`), so a benchmark's cold round starts with nothing shared.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import betterproto2

from xds_server.encode import share
from xds_server.translate import _memo

P = ParamSpec("P")
M = TypeVar("M", bound=betterproto2.Message | None)


def shared(maxsize: int) -> Callable[[Callable[P, M]], Callable[P, M]]:
    """One shared message object per distinct (hashable, positional) argument tuple."""

    def decorate(fn: Callable[P, M]) -> Callable[P, M]:
        table: dict[tuple[object, ...], M] = {}

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> M:
            if kwargs:  # not used by the translation; keep it correct anyway
                return fn(*args, **kwargs)
            msg = table.get(args)
            if msg is None:
                msg = fn(*args, **kwargs)
                if len(table) >= maxsize:
                    table.clear()
                table[args] = msg
            if msg is not None:
                share(msg)  # again on every use: the encoder's registry is bounded and may have dropped it
            return msg

        _memo.register_clear(table.clear)
        return wrapper

    return decorate
