"""``meshctl status`` / ``proxy-config`` against a cluster (``--kubeconfig``, ``--context``, ``-n``).

Policy status comes from the API (each policy's ``status``, written by the operator). The proxy table and the
config dump come from the control plane's admin endpoint, reached through the API server's **service proxy**
(``/api/v1/namespaces/NS/services/NAME:PORT/proxy/...``): it needs only the user's own credentials and the
``services/proxy`` permission (RBAC decides who may look), no port-forward process and no local port. ``--admin
URL`` overrides it (e.g. a port-forward you run yourself, or a control plane on this machine).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from mesh_operator.api import CRD_KINDS
from mesh_operator.crdgen import plural as plural_of
from meshctl.admin_client import get as admin_get
from meshctl.errors import AdminUnavailable

GROUP, VERSION = "meshwork.io", "v1alpha1"
PLURALS = {kind: plural_of(kind) for kind in CRD_KINDS if kind != "Mesh"}
DEFAULT_ADMIN_SERVICE = "meshwork-system/meshwork-controller:admin"


def wants_cluster(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "kubeconfig", None) or getattr(args, "context", None) or getattr(args, "namespace", None))


def api_client(args: argparse.Namespace) -> Any:
    from kubernetes import config

    try:
        return config.new_client_from_config(config_file=args.kubeconfig, context=args.context)  # type: ignore[no-untyped-call]
    except (config.ConfigException, OSError) as e:
        raise AdminUnavailable(f"cannot load the kubeconfig: {e}") from e


def namespace_of(args: argparse.Namespace) -> str:
    if args.namespace:
        return str(args.namespace)
    from kubernetes import config

    try:
        _, active = config.list_kube_config_contexts(config_file=args.kubeconfig)  # type: ignore[no-untyped-call]
    except (config.ConfigException, OSError):
        return "default"
    if args.context:
        contexts, _ = config.list_kube_config_contexts(config_file=args.kubeconfig)  # type: ignore[no-untyped-call]
        active = next((c for c in contexts if c["name"] == args.context), active)
    return str((active or {}).get("context", {}).get("namespace") or "default")


def policies(api: Any, namespace: str | None) -> dict[str, dict[str, Any]]:
    """Every policy's receipt, in the shape of the admin endpoint's ``/debug/policyz`` (keyed Kind/ns/name)."""
    from kubernetes import client

    custom = client.CustomObjectsApi(api)
    out: dict[str, dict[str, Any]] = {}
    for kind, plural in PLURALS.items():
        listing: Any
        try:
            if namespace:
                listing = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, plural)
            else:
                listing = custom.list_cluster_custom_object(GROUP, VERSION, plural)
        except client.ApiException as e:
            raise AdminUnavailable(f"cannot list {plural}: HTTP {e.status} {e.reason}") from e
        for item in listing.get("items", []):
            meta = item["metadata"]
            status = item.get("status") or {}
            conditions = {c["type"]: c for c in status.get("conditions") or []}
            accepted = conditions.get("Accepted") or {"status": "Unknown", "reason": "NoStatus", "message": ""}
            proxies = status.get("proxies") or {}
            out[f"{kind}/{meta['namespace']}/{meta['name']}"] = {
                "accepted": accepted,
                "conditions": list(conditions.values()),
                "generation": meta.get("generation"),
                "observedGeneration": status.get("observedGeneration"),
                "proxies": proxies.get("affected", 0),
                "applied": proxies.get("applied", 0),
                "rejected": {r["proxy"]: r.get("message", "") for r in proxies.get("rejected") or []},
            }
    return out


def admin(api: Any, args: argparse.Namespace, path: str, **query: str) -> Any:
    """GET ``path`` from the control plane's admin endpoint: ``--admin`` if given, else the service proxy."""
    if getattr(args, "admin_explicit", False):
        return admin_get(args.admin, path, **query)
    from kubernetes import client

    ns, _, rest = args.admin_service.partition("/")
    name, _, port = rest.partition(":")
    target = f"{name}:{port}" if port else name
    try:
        request = api.param_serialize(
            method="GET",
            resource_path=f"/api/v1/namespaces/{ns}/services/{target}/proxy{path}",
            query_params=list(query.items()),
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
        )
        resp = api.call_api(*request, _request_timeout=10)
        resp.read()
        if resp.status >= 400:
            raise client.ApiException(status=resp.status, reason=resp.reason)
        return json.loads(resp.data)
    except client.ApiException as e:
        raise AdminUnavailable(
            f"cannot reach the control plane through the service proxy {args.admin_service}: HTTP {e.status} {e.reason}"
        ) from e
    except ValueError as e:
        raise AdminUnavailable(f"the control plane at {args.admin_service} answered with something not JSON") from e
