"""The cyclic garbage collector's settings for a control-plane process (xDS server, operator, local mode).

CPython's defaults (700, 10, 10) suit short scripts. A control plane holds a large, long-lived heap (every proxy's
stream state and snapshot) and allocates in bursts (a push to every stream); with the defaults a push of one changed
cluster to 10,000 streams ran about one full collection per push, each 1.6–2.5 s of stopped event loop (measured:
``bench/push.py --clients 10000 --client-impl go`` with a ``gc.callbacks`` probe). Objects of the push itself die by
reference counting; the collector only keeps traversing the survivors.

What :func:`configure` sets, and why it bounds memory:

- generation 0 is collected every 50,000 net container allocations instead of 700: a burst's short-lived objects
  are freed by reference counting before a collection sees them; cyclic garbage waits for at most that many
  allocations (a few MB);
- generation 1 every 20 generation-0 collections and a full collection every 100 generation-1 ones (CPython also
  skips a full collection until the objects that survived into the oldest generation since the last one reach 25 %
  of it): full collections become rare instead of per push, and still happen, so cycles in old objects are
  collected, not leaked;
- :func:`gc.freeze` once at start-up, after the imports: modules, classes and functions are never garbage, so no
  full collection walks them again.

Nothing here disables the collector.
"""

from __future__ import annotations

import gc

THRESHOLDS = (50_000, 20, 100)


def configure() -> None:
    """Apply the control plane's collector settings to this process (call once, before serving)."""
    gc.set_threshold(*THRESHOLDS)
    gc.freeze()
