"""The periodic resync: a full LIST of every watched kind, reconciled into the store.

kopf's watches keep the store current and resume from the last resourceVersion after a timeout or a reconnect. What
a watch cannot tell us is a deletion that happened while it was away long enough for its resourceVersion to expire
(410 Gone: the watch re-lists, and a re-list only shows what exists). Every ``period`` this task LISTs each kind
(paged, one consistent snapshot per kind) and lets :meth:`Store.reconcile` correct the store without ever undoing a
newer watch event. A correction is logged: in a healthy cluster there are none.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from mesh_operator.kube.errors import ApiError
from mesh_operator.kube.rest import Rest
from mesh_operator.kube.store import Store

log = logging.getLogger(__name__)

PAGE = 500


def list_path(group: str, version: str, plural: str) -> str:
    return f"/api/{version}/{plural}" if not group else f"/apis/{group}/{version}/{plural}"


class Resyncer:
    def __init__(
        self, rest: Rest, store: Store, resources: Mapping[str, tuple[str, str, str]], *, period: float
    ) -> None:
        self.rest, self.store, self.resources, self.period = rest, store, resources, period
        #: objects corrected (added or replaced, removed) by resyncs, ever; completed resync rounds
        self.corrected = 0
        self.removed = 0
        self.rounds = 0

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.period)
            if self.store.synced:
                await self.resync()

    async def resync(self) -> None:
        for kind, (group, version, plural) in self.resources.items():
            api_version = f"{group}/{version}" if group else version
            try:
                items, list_version = await self._list(list_path(group, version, plural))
            except ApiError as e:
                log.warning("resync of %s skipped: %s", plural, e)
                continue
            # A LIST's items carry no kind/apiVersion; the watch's objects (and the validator) have them.
            bodies = [{**item, "kind": kind, "apiVersion": api_version} for item in items]
            changed, removed = self.store.reconcile(kind, bodies, list_version)
            if changed or removed:
                log.warning("resync: %d %s the watch had missed or had older, %d it still had after deletion",
                            changed, plural, removed)  # fmt: skip
                self.corrected += changed
                self.removed += removed
        self.rounds += 1

    async def _list(self, path: str) -> tuple[list[Mapping[str, Any]], int]:
        items: list[Mapping[str, Any]] = []
        cont = ""
        list_version = 0
        while True:
            query = f"?limit={PAGE}" + (f"&continue={quote(cont)}" if cont else "")
            page = await self.rest.get(path + query)
            meta = page.get("metadata") or {}
            if not list_version:
                list_version = int(meta.get("resourceVersion") or 0)
            items += page.get("items") or []
            cont = meta.get("continue") or ""
            if not cont:
                return items, list_version
