"""The namespace labels the injection webhook decides on: the watch's, or the API's for a namespace the watch has
not delivered yet.

A namespace created a moment before its first pod (a test suite, a GitOps sync, ``kubectl apply`` of one file) can
reach the webhook before the Namespace watch event reaches the store. The API server has already matched the
webhook's namespaceSelector on the label, so answering from the stale "unknown" would admit the pod without its
sidecar (failurePolicy Ignore only hides it). For a namespace the store does not know, the labels are read once from
the API (a bounded GET on the operator's loop, from the admission worker thread that asks).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

log = logging.getLogger("meshwork.operator")

#: How long the admission thread waits for the API's answer (the webhook's own timeout is 5 s in the chart).
LOOKUP_TIMEOUT_S = 2.0


class NamespaceLabels:
    """``labels(name)``: the store's labels of ``name``, else the API's (None when neither knows it)."""

    def __init__(
        self,
        known: Callable[[str], Mapping[str, str] | None],
        fetch: Callable[[str], Coroutine[Any, Any, Any]],
        loop: asyncio.AbstractEventLoop,
        timeout: float = LOOKUP_TIMEOUT_S,
    ) -> None:
        self.known, self.fetch, self.loop, self.timeout = known, fetch, loop, timeout

    def __call__(self, name: str) -> Mapping[str, str] | None:
        labels = self.known(name)
        if labels is not None or _on(self.loop):
            return labels  # never block the loop on itself: only the admission worker threads look up
        future = asyncio.run_coroutine_threadsafe(self.fetch(f"/api/v1/namespaces/{name}"), self.loop)
        try:
            body = future.result(timeout=self.timeout)
        except Exception as e:  # a missing namespace, a slow API server: decide as before (unknown)
            future.cancel()
            log.warning("namespace %s: not in the store yet and its labels could not be read: %s", name, e)
            return None
        found: Mapping[str, str] = ((body or {}).get("metadata") or {}).get("labels") or {}
        return found


def _on(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
