"""``meshctl apply`` against a cluster: server-side apply (field manager ``meshctl``), then the policies' status as
the operator writes it: ``status.observedGeneration`` caught up with the applied generation, ``Accepted``, and
``status.proxies`` (applied of affected, and who rejected it with Envoy's error)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import yaml

from mesh_operator.loader import Loaded, expand
from meshctl import cluster
from meshctl.apply import Progress, proxies_behind, wait
from meshctl.errors import AdminUnavailable
from meshctl.output import err

FIELD_MANAGER = "meshctl"


def _documents(paths: list[str]) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for f in expand(paths):
        docs += [d for d in yaml.safe_load_all(Path(f).read_text()) if isinstance(d, dict)]
    return docs


def _call(what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """One API call; every failure becomes one line (:class:`AdminUnavailable`), never a traceback."""
    from kubernetes import client
    from urllib3.exceptions import HTTPError

    try:
        return fn(*args, **kwargs)
    except client.ApiException as e:
        detail = ""
        try:
            detail = json.loads(e.body or "{}").get("message", "")
        except (ValueError, AttributeError):
            pass
        raise AdminUnavailable(f"{what}: HTTP {e.status} {detail or e.reason}") from e
    except (HTTPError, OSError) as e:
        raise AdminUnavailable(f"{what}: cannot reach the cluster ({type(e).__name__}: {e})") from e


def apply_cluster(args: argparse.Namespace, loaded: Loaded, timeout: float) -> int:
    del loaded  # validated already; the raw documents are what server-side apply sends
    try:
        api = cluster.api_client(args)
        namespace = cluster.namespace_of(args)
        applied = apply_documents(api, _documents(args.paths), namespace)
    except AdminUnavailable as e:
        err(str(e))
        return 2
    if not applied:
        err("nothing to apply: the files hold no Meshwork policy")
        return 2
    if not args.wait:
        return 0
    from kubernetes import client

    custom = client.CustomObjectsApi(api)

    def look() -> Progress:
        objs = [
            _call(
                f"reading {kind}/{ns}/{name}",
                custom.get_namespaced_custom_object,
                cluster.GROUP,
                cluster.VERSION,
                ns,
                cluster.PLURALS[kind],
                name,
            )
            for kind, ns, name, _ in applied
        ]
        return cluster_progress(objs, [gen for *_, gen in applied])

    def proxy_names() -> list[str]:
        """Policy status counts proxies but does not name them; the control plane's sync table does."""
        try:
            policyz = cluster.admin(api, args, "/debug/policyz")
            sync = cluster.admin(api, args, "/debug/syncz")["proxies"]
        except AdminUnavailable as e:
            return [f"(proxy names unavailable: {e})"]
        return proxies_behind(policyz, sync)

    return wait(look, timeout, on_timeout=proxy_names)


def apply_documents(api: Any, docs: list[dict[str, Any]], namespace: str) -> list[tuple[str, str, str, int]]:
    """Server-side apply every policy document; returns (kind, namespace, name, generation) of each."""
    from kubernetes import client

    custom = client.CustomObjectsApi(api)
    out = []
    for doc in docs:
        kind = doc.get("kind")
        if kind not in cluster.PLURALS:
            err(f"skipped {kind}: only policies are applied to a cluster (the operator reads the rest from it)")
            continue
        meta = doc.setdefault("metadata", {})
        ns = meta.get("namespace") or namespace
        meta["namespace"] = ns
        name = meta["name"]
        result = _call(
            f"applying {kind}/{ns}/{name}",
            custom.patch_namespaced_custom_object,
            cluster.GROUP,
            cluster.VERSION,
            ns,
            cluster.PLURALS[kind],
            name,
            doc,
            field_manager=FIELD_MANAGER,
            force=True,
            _content_type="application/apply-patch+yaml",
            _preload_content=False,  # the client does not deserialize apply-patch answers; read the JSON itself
        )
        generation = int(json.loads(result.data)["metadata"].get("generation", 1))
        print(f"{kind.lower()}/{name} applied in {ns} (generation {generation})")
        out.append((kind, ns, name, generation))
    return out


def cluster_progress(objs: list[dict[str, Any]], generations: list[int]) -> Progress:
    """Where a cluster apply stands, from the policies' status."""
    p = Progress()
    for obj, generation in zip(objs, generations, strict=True):
        meta = obj["metadata"]
        ref = f"{obj['kind']}/{meta['namespace']}/{meta['name']}"
        status = obj.get("status") or {}
        if int(status.get("observedGeneration") or 0) < generation:
            p.waiting_for = f"the operator to observe generation {generation} of {ref}"
            p.behind.append(f"{ref}: status not yet written for generation {generation}")
            continue
        conditions = {c["type"]: c for c in status.get("conditions") or []}
        accepted = conditions.get("Accepted", {})
        if accepted.get("status") != "True":
            p.failures.append(f"{ref} is not accepted: {accepted.get('reason')}: {accepted.get('message')}")
            continue
        proxies = status.get("proxies") or {}
        for r in proxies.get("rejected") or []:
            p.failures.append(f"{ref} rejected by {r['proxy']}: {r.get('message', '')}")
        affected, done = int(proxies.get("affected", 0)), int(proxies.get("applied", 0))
        p.total += affected
        p.in_sync += done
        if done < affected:
            p.behind.append(f"{ref}: applied by {done} of {affected} proxies")
    p.done = not p.failures and not p.behind and not p.waiting_for
    return p
