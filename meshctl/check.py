"""``meshctl check``: is the mesh healthy and are its policies sound? Exit 1 on any error, 2 when nothing could be
checked (bad input, the target unreachable).

- ``-f PATH...``: mesh analysis of the files with stable codes MW0001… (:mod:`mesh_operator.analysis.findings`);
  with ``--kubeconfig``/``--context``, of the cluster's mesh as it would be with the files applied (for a pull
  request). Health checks are not run then.
- ``--admin URL`` (local mode) or a cluster (``--kubeconfig``/``--context``): the control plane answers, every
  proxy is connected and in sync, the root and issuer certificates are valid for at least 60 more days; on a
  cluster also the CRDs (installed, serving the version this meshctl speaks, schema up to date) and the webhooks
  (a caBundle holding a CA certificate valid for 60 more days).
- ``--pre``: before an install: the API server answers, Kubernetes is recent enough, and no CRD of ours exists
  at another version.
"""

from __future__ import annotations

import argparse
import base64
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from mesh_operator.analysis.findings import analyze
from mesh_operator.api import API_GROUP, API_VERSION, CRD_KINDS
from mesh_operator.crdgen import crd
from mesh_operator.loader import load_paths
from meshctl import cluster
from meshctl.admin_client import get
from meshctl.errors import AdminUnavailable
from meshctl.output import dump, err
from meshctl.status import SYNCED, proxy_rows

#: Certificates must stay valid this much longer (Linkerd's trust-anchor outages: linkerd2#3452, #4808).
MIN_CERT_LIFETIME = timedelta(days=60)
WEBHOOK_SELECTOR = "app.kubernetes.io/part-of=meshwork"
#: Native sidecars (KEP-753) are on by default from 1.29.
MIN_KUBERNETES = (1, 29)


@dataclass(frozen=True)
class Check:
    code: str
    level: str  # ok | warning | error
    subject: str
    message: str

    def __str__(self) -> str:
        mark = {"ok": "ok  ", "warning": "warn", "error": "FAIL"}[self.level]
        return f"[{mark}] {self.code} {self.subject}: {self.message}"


def add_parser(sub: Any) -> None:
    p = sub.add_parser("check", help="mesh analysis (MW0001…) and health of the control plane, proxies, certs")
    p.add_argument("-f", "--filename", dest="paths", action="append", help="analyse these mesh files")
    p.add_argument("--admin", help="local mode: check this control plane (admin URL)")
    p.add_argument("--pre", action="store_true", help="before installing: can Meshwork be installed here?")
    p.add_argument("-o", "--output", choices=["text", "json", "yaml"], default="text")
    cluster_args(p)
    p.set_defaults(func=run)


def cluster_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kubeconfig", help="check this cluster (default: $KUBECONFIG)")
    p.add_argument("--context", help="kubeconfig context")
    p.add_argument("-n", "--namespace", help=argparse.SUPPRESS)
    p.add_argument(
        "--admin-service",
        default=cluster.DEFAULT_ADMIN_SERVICE,
        help=f"the control plane's admin Service (default {cluster.DEFAULT_ADMIN_SERVICE})",
    )
    p.add_argument(
        "--webhook-selector",
        default=WEBHOOK_SELECTOR,
        help=f"label selector of Meshwork's webhook configurations (default {WEBHOOK_SELECTOR}, as the chart sets)",
    )


def run(args: argparse.Namespace) -> int:
    checks: list[Check] = []
    try:
        on_cluster = bool(args.kubeconfig or args.context)
        if args.paths:  # the files, in the context of the cluster's mesh when one is named
            analysis = analysis_checks(args.paths, args if on_cluster and not args.pre else None)
            if analysis is None:
                return 2
            checks += analysis
        elif on_cluster and args.pre:
            checks += pre_checks(cluster.api_client(args))
        elif on_cluster:
            api = cluster.api_client(args)
            checks += crd_checks(api) + webhook_checks(api, args.webhook_selector)
            checks += control_plane_checks(lambda path: cluster.admin(api, args, path))
        elif args.admin_explicit:
            checks += control_plane_checks(lambda path: get(args.admin, path))
        if not checks and not args.paths:
            err("nothing to check: give -f PATH, --admin URL (local mode) or --kubeconfig/--context (a cluster)")
            return 2
    except AdminUnavailable as e:
        err(str(e))
        return 2
    errors = [c for c in checks if c.level == "error"]
    if args.output == "text":
        for c in checks:
            print(c)
        warnings = sum(c.level == "warning" for c in checks)
        print(f"{len(errors)} error(s), {warnings} warning(s), {len(checks) - len(errors) - warnings} ok")
    else:
        dump({"ok": not errors, "checks": [asdict(c) for c in checks]}, args.output)
    return 1 if errors else 0


def analysis_checks(paths: list[str], on_cluster: argparse.Namespace | None = None) -> list[Check] | None:
    """Findings of the files; with ``on_cluster``, of the cluster's mesh as it would be with the files applied."""
    loaded = load_paths(paths)
    fatal = [p for p in loaded.errors if p.violation.path == ""]
    for p in fatal:
        err(str(p))
    if fatal:
        return None
    out = [Check("MW0000", "error", p.source, str(p.violation)) for p in loaded.errors]
    state = loaded.state()
    if on_cluster is not None:
        from meshctl.cluster_state import overlay, read_state

        current, _ = read_state(on_cluster)
        state = overlay(current, [obj for _, obj in loaded.objects], cluster.namespace_of(on_cluster))
    out += [Check(f.code, f.level, f.subject, f.message) for f in analyze(state)]
    if not out:
        out.append(Check("MW0000", "ok", "analysis", f"{len(loaded.objects)} object(s), no finding"))
    return out


def _cert_checks(certz: dict[str, Any], now: datetime) -> list[Check]:
    out = []
    named = [("root", r) for r in certz.get("roots", [])]
    if "issuer" in certz:
        named.append(("issuer", certz["issuer"]))
    for what, c in named:
        left = timedelta(seconds=int(c["time_left_s"]))
        subject = f"{what} {c.get('subject', c['serial'])}"
        if left < MIN_CERT_LIFETIME:
            msg = f"expires {c['not_after']} ({c['time_left']} left; at least {MIN_CERT_LIFETIME.days} days needed)"
            out.append(Check("certificates", "error", subject, msg + ": rotate it now (meshctl certs rotate --root)"))
        else:
            out.append(Check("certificates", "ok", subject, f"valid until {c['not_after']} ({c['time_left']} left)"))
    del now
    return out


def control_plane_checks(admin: Any) -> list[Check]:
    """The control plane answers, has no problem, every proxy is connected and in sync; certificates."""
    policyz = admin("/debug/policyz")
    sync = admin("/debug/syncz")["proxies"]
    out = [Check("control-plane", "ok", "admin endpoint", f"answers (translation generation {policyz['generation']})")]
    for problem in policyz.get("problems", []):
        out.append(Check("control-plane", "error", "control plane", problem))
    rows = proxy_rows(sync, policyz.get("desired", {}), policyz.get("failed", {}))
    bad = [r for r in rows if r["state"] != SYNCED]
    for r in bad:
        why = "; ".join(n["error"][:200] for n in r.get("rejected", [])) or r.get("failed") or ""
        out.append(Check("proxies", "error", r["proxy"], r["state"] + (f": {why}" if why else "")))
    if rows and not bad:
        out.append(Check("proxies", "ok", "proxies", f"all {len(rows)} connected and in sync"))
    out += _cert_checks(admin("/debug/certz"), datetime.now(UTC))
    return out


def _k8s(what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    from meshctl.apply_cluster import _call

    return _call(what, fn, *args, **kwargs)


def crd_checks(api: Any) -> list[Check]:
    from kubernetes import client

    ext = client.ApiextensionsV1Api(api)
    installed = {c.metadata.name: c for c in _k8s("listing CRDs", ext.list_custom_resource_definition).items}
    out = []
    for kind in sorted(CRD_KINDS):
        want = crd(kind)
        name = want["metadata"]["name"]
        have = installed.get(name)
        if have is None:
            out.append(Check("crds", "error", name, "not installed (helm install meshwork, or kubectl apply -f crds/)"))
            continue
        versions = {v.name: v for v in have.spec.versions}
        if API_VERSION not in versions or not versions[API_VERSION].served:
            served = ", ".join(v for v, x in versions.items() if x.served) or "none"
            out.append(Check("crds", "error", name, f"does not serve {API_VERSION} (serves {served})"))
            continue
        schema = api.sanitize_for_serialization(versions[API_VERSION].schema.open_apiv3_schema)
        if schema != want["spec"]["versions"][0]["schema"]["openAPIV3Schema"]:
            out.append(
                Check("crds", "error", name, f"{API_VERSION} schema differs from this release: upgrade the CRDs")
            )
            continue
        out.append(Check("crds", "ok", name, f"{API_VERSION} served, schema current"))
    return out


def _ca_bundle_check(name: str, bundle: str | None, now: datetime) -> Check:
    from cryptography import x509

    if not bundle:
        return Check("webhooks", "error", name, "caBundle is empty: the API server cannot trust the webhook")
    try:
        pem = base64.b64decode(bundle)
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError as e:
        return Check("webhooks", "error", name, f"caBundle is not PEM certificates: {e}")
    for cert in certs:
        left = cert.not_valid_after_utc - now
        if left < MIN_CERT_LIFETIME:
            return Check("webhooks", "error", name, f"caBundle certificate expires {cert.not_valid_after_utc:%Y-%m-%d}")
    return Check("webhooks", "ok", name, f"caBundle holds {len(certs)} certificate(s) valid for 60+ days")


def webhook_checks(api: Any, selector: str = WEBHOOK_SELECTOR) -> list[Check]:
    from kubernetes import client

    adm = client.AdmissionregistrationV1Api(api)
    now = datetime.now(UTC)
    out = []
    for what, lister in (
        ("validating", adm.list_validating_webhook_configuration),
        ("mutating", adm.list_mutating_webhook_configuration),
    ):
        for cfg in _k8s(f"listing {what} webhooks", lister, label_selector=selector).items:
            for hook in cfg.webhooks or []:
                out.append(_ca_bundle_check(f"{cfg.metadata.name}/{hook.name}", hook.client_config.ca_bundle, now))
    if not out:
        out.append(Check("webhooks", "error", "webhooks", f"no webhook configuration matches {selector}"))
    return out


def pre_checks(api: Any) -> list[Check]:
    from kubernetes import client

    info = _k8s("reading the API server version", client.VersionApi(api).get_code)
    out = [Check("pre", "ok", "api server", f"reachable, Kubernetes {info.git_version}")]
    try:
        version = (int(info.major), int("".join(ch for ch in info.minor if ch.isdigit())))
    except ValueError:
        version = (0, 0)
    if version < MIN_KUBERNETES:
        need = ".".join(map(str, MIN_KUBERNETES))
        out.append(Check("pre", "error", "kubernetes", f"{info.git_version} is older than {need} (native sidecars)"))
    ext = client.ApiextensionsV1Api(api)
    for c in _k8s("listing CRDs", ext.list_custom_resource_definition).items:
        if c.spec.group == API_GROUP and API_VERSION not in {v.name for v in c.spec.versions}:
            out.append(Check("pre", "error", c.metadata.name, f"exists without {API_VERSION}: remove it first"))
    return out
