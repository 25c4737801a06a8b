"""meshctl: the Meshwork command line. Parses arguments and calls library functions; nothing more."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from meshctl import apply, certs, check, commands, diff, explain, inject, status
from meshctl.admin_client import DEFAULT_ADMIN
from meshctl.cluster import DEFAULT_ADMIN_SERVICE


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="meshctl", description="Operate and debug a Meshwork service mesh.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("validate", help="check mesh YAML files; exit 1 on any error")
    p.add_argument("-f", "--filename", dest="paths", action="append", required=True, help="file or directory")
    p.set_defaults(func=commands.validate)

    p = sub.add_parser("render", help="the Envoy config one proxy would receive (offline)")
    p.add_argument("-f", "--filename", dest="paths", action="append", required=True, help="file or directory")
    p.add_argument("--node", required=True, help="NAMESPACE/WORKLOAD")
    p.add_argument("-o", "--output", choices=["yaml", "json"], default="yaml")
    p.add_argument("--bootstrap", action="store_true", help="a complete static Envoy bootstrap instead")
    p.add_argument(
        "--certs",
        metavar="DIR",
        help="with --bootstrap: use cert.pem, key.pem and ca.pem from DIR (default: an ephemeral test CA)",
    )
    p.set_defaults(func=commands.render)

    local = sub.add_parser("local", help="run the mesh on this machine, driven by YAML files")
    local_sub = local.add_subparsers(dest="local_command", required=True, metavar="COMMAND")
    p = local_sub.add_parser("run", help="control plane + sidecars + workloads, in the foreground; Ctrl-C stops all")
    p.add_argument("-f", "--filename", dest="directory", required=True, help="directory of mesh YAML files")
    p.add_argument("--state-dir", help="CA, sidecar files and logs (default: ~/.local/state/meshwork/local-<hash>)")
    p.add_argument("--xds-port", type=int, default=15012)
    p.add_argument("--admin-port", type=int, default=15014)
    p.add_argument("--no-workloads", action="store_true", help="start sidecars only, not the workload commands")
    p.add_argument("--delta", action="store_true", help="sidecars use delta xDS instead of state-of-the-world")
    p.add_argument("--envoy-log-level", default="warning")
    p.add_argument(
        "--no-preflight", action="store_true", help="do not check new config with real Envoy before sending it"
    )
    p.add_argument(
        "--envoy-concurrency",
        type=int,
        default=None,
        metavar="N",
        help="worker threads per sidecar (default: Envoy's, one per hardware thread)",
    )
    p.add_argument("--ca-cert", help="use this root or intermediate CA certificate (PEM) instead of a generated root")
    p.add_argument("--ca-key", help="its private key (PEM, readable by the owner only)")
    p.add_argument("--ca-chain", help="the certificates above it up to the root (PEM), for an intermediate")
    p.add_argument("-v", "--verbose", action="store_true")
    p.set_defaults(func=commands.local_run)

    p = sub.add_parser("status", help="every proxy: synced, stale or rejecting config; every policy's receipts")
    p.add_argument(
        "--admin", help=f"control plane admin URL (default {DEFAULT_ADMIN}; on a cluster: the service proxy)"
    )
    p.add_argument("-o", "--output", choices=["table", "json", "yaml"], default="table")
    _cluster_args(p)
    p.add_argument("-A", "--all-namespaces", action="store_true", help="on a cluster: policies of every namespace")
    p.set_defaults(func=status.status)

    p = sub.add_parser("proxy-config", help="the resources the control plane holds for one proxy")
    p.add_argument("node", help="NAMESPACE/WORKLOAD (on a cluster, WORKLOAD alone means -n's namespace)")
    p.add_argument("--type", choices=["listeners", "routes", "clusters", "endpoints", "secrets"])
    p.add_argument("--admin")
    p.add_argument("-o", "--output", choices=["table", "json", "yaml"], default="table")
    _cluster_args(p)
    p.set_defaults(func=status.proxy_config)

    inject.add_parser(sub)
    explain.add_parser(sub)
    diff.add_parser(sub)
    apply.add_parser(sub)
    check.add_parser(sub)

    certs_parser = sub.add_parser("certs", help="workload certificates, roots and staged root rotation")
    certs_sub = certs_parser.add_subparsers(dest="certs_command", required=True, metavar="COMMAND")
    p = certs_sub.add_parser("status", help="per identity serial, issuer, expiry; roots with expiry warnings")
    p.add_argument("--admin", default=DEFAULT_ADMIN, help=f"control plane admin URL (default {DEFAULT_ADMIN})")
    p.add_argument("-o", "--output", choices=["table", "json", "yaml"], default="table")
    p.set_defaults(func=certs.status)
    p = certs_sub.add_parser("rotate", help="reissue one identity's certificate, or rotate the root in stages")
    p.add_argument("--admin", default=DEFAULT_ADMIN, help=f"control plane admin URL (default {DEFAULT_ADMIN})")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--identity", metavar="NS/SA", help="reissue the certificate of this service account")
    which.add_argument("--root", action="store_true", help="every step of a staged root rotation, waiting for proxies")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the proxies at each step")
    p.set_defaults(func=certs.rotate)
    return parser


def _cluster_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kubeconfig", help="read policy status from this cluster (default: $KUBECONFIG)")
    p.add_argument("--context", help="kubeconfig context")
    p.add_argument("-n", "--namespace", help="the policies' namespace (default: the context's)")
    p.add_argument(
        "--admin-service",
        default=DEFAULT_ADMIN_SERVICE,
        help=f"the control plane's admin Service, reached through the API server (default {DEFAULT_ADMIN_SERVICE})",
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if hasattr(args, "admin"):
        args.admin_explicit = args.admin is not None
        args.admin = args.admin or DEFAULT_ADMIN
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        sys.stderr.close()
        return 0
