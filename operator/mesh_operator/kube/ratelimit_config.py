"""In a cluster, the control plane writes the global rate-limit service's configuration into a ConfigMap.

The ConfigMap (``--ratelimit-configmap NAME``, in the operator's namespace) holds one key, ``meshwork.yaml``: the
same file local mode writes (:func:`mesh_operator.local.ratelimit.config_text`), built from every accepted global
rate limit. The chart's rate-limit Deployment mounts it at ``/data/ratelimit/config`` (``RUNTIME_WATCH_ROOT=false``),
so the service reloads whenever the policies change. Only the leader writes; a write happens only when the text
differs from what the ConfigMap holds; a failed write is retried on the next round.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from mesh_operator.kube.errors import ApiError
from mesh_operator.kube.rest import Rest
from mesh_operator.kube.rounds import leader_rounds
from mesh_operator.local.ratelimit import config_text
from mesh_operator.translate.state import MeshState

log = logging.getLogger(__name__)

KEY = "meshwork.yaml"


class RateLimitConfigWriter:
    def __init__(
        self,
        rest: Rest,
        namespace: str,
        name: str,
        state: Callable[[], MeshState | None],
        *,
        is_leader: Callable[[], bool] = lambda: True,
        period: float = 2.0,
    ) -> None:
        self.rest, self.namespace, self.name = rest, namespace, name
        self._state, self.is_leader, self.period = state, is_leader, period
        self._wake = asyncio.Event()
        self._in_configmap: str | None = None
        self.writes = 0

    @property
    def path(self) -> str:
        return f"/api/v1/namespaces/{self.namespace}/configmaps/{self.name}"

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        await leader_rounds(
            self.sync_once,
            period=self.period,
            is_leader=self.is_leader,
            wake=self._wake,
            on_error=self._failed,
            on_follower=self._forget,  # another replica may write meanwhile: re-read when leading again
        )

    def _failed(self, e: Exception) -> None:
        self._forget()
        log.warning("rate-limit service configuration not written to ConfigMap %s: %s", self.name, e)

    def _forget(self) -> None:
        self._in_configmap = None

    async def sync_once(self) -> bool:
        """Write the ConfigMap when its content differs from the policies'. True when it wrote."""
        state = self._state()
        if state is None:
            return False
        text = config_text(state)
        if text == self._in_configmap:
            return False
        try:
            current: dict[str, Any] | None = await self.rest.get(self.path)
        except ApiError as e:
            if e.status != 404:
                raise
            current = None
        if current is not None and (current.get("data") or {}).get(KEY) == text:
            self._in_configmap = text
            return False
        if current is None:
            body = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": self.name,
                    "namespace": self.namespace,
                    "labels": {"app.kubernetes.io/managed-by": "meshwork", "app.kubernetes.io/component": "ratelimit"},
                },
                "data": {KEY: text},
            }
            await self.rest.create(f"/api/v1/namespaces/{self.namespace}/configmaps", body)
        else:
            # resourceVersion from the read: a concurrent writer makes this fail (409) and the next round re-reads.
            await self.rest.replace(self.path, {**current, "data": {**(current.get("data") or {}), KEY: text}})
        self._in_configmap = text
        self.writes += 1
        log.info("rate-limit service configuration written to ConfigMap %s/%s", self.namespace, self.name)
        return True
