"""``meshwork-controller`` / ``python -m mesh_operator``: the operator's command line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from mesh_operator.kube.errors import KubeError
from mesh_operator.kube.operator import OperatorOptions
from xds_server import gc_policy


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="meshwork-controller",
        description="The Meshwork control plane for Kubernetes: watches, xDS, CA, policy status, admission.",
    )
    p.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or in-cluster)")
    p.add_argument("--context", help="kubeconfig context")
    p.add_argument("-n", "--namespace", help="the operator's namespace, for its Leases (default: from the context)")
    p.add_argument("--trust-domain", default="cluster.local")
    p.add_argument("--ca-dir", type=Path, help="the CA's directory (every replica must use the same CA)")
    p.add_argument("--xds-host", default="127.0.0.1")
    p.add_argument("--xds-port", type=int, default=15012)
    p.add_argument("--admin-host", default="127.0.0.1", help="admin endpoint address (keep it on loopback)")
    p.add_argument("--admin-port", type=int, default=15014)
    p.add_argument("--webhook-host", default="127.0.0.1")
    p.add_argument("--webhook-port", type=int, help="serve the admission webhooks on this port (0: any free port)")
    p.add_argument(
        "--webhook-name",
        action="append",
        dest="webhook_names",
        help="a DNS name of the webhook certificate (repeatable; default meshwork-webhook.meshwork-system.svc)",
    )
    p.add_argument("--watch-server-timeout", type=float, default=60.0, help="seconds the API server keeps a watch")
    p.add_argument(
        "--watch-client-timeout", type=float, default=90.0, help="seconds without an answer before a watch is re-listed"
    )
    p.add_argument(
        "--resync-period", type=float, default=300.0, help="seconds between full LISTs of every kind (0: off)"
    )
    p.add_argument("--status-interval", type=float, default=1.0, help="at most one status write per policy per this")
    p.add_argument("--debounce", type=float, default=0.1, help="translate this long after the last change")
    p.add_argument("--max-debounce", type=float, default=1.0, help="... and at most this long after the first")
    p.add_argument("--no-leader-election", action="store_true", help="a single replica: always write status")
    p.add_argument("--lease-name", default="meshwork-controller", help="the leader Lease (in --namespace)")
    p.add_argument("--lease-duration", type=float, default=15.0)
    p.add_argument("--renew-period", type=float, default=2.0)
    p.add_argument("--identity", help="this replica's name in the Leases (default: hostname-pid)")
    p.add_argument(
        "--ratelimit-configmap",
        help="write the global rate-limit service's configuration (from the policies) into this ConfigMap of "
        "--namespace (the chart's rateLimit.enabled deploys the service reading it)",
    )
    p.add_argument(
        "--config",
        type=Path,
        default=os.environ.get("MESHWORK_CONFIG") or None,
        help="the chart's settings file (default: $MESHWORK_CONFIG); with it the operator runs as in a cluster: "
        "ports, names, CA Secret, identity service, root CA ConfigMaps, webhook caBundles from that file",
    )
    p.add_argument(
        "--listen-host",
        default="0.0.0.0",
        help="with --config: the address xDS, the webhooks, the identity service and health listen on",
    )
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from mesh_operator.kube.operator import run

    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s %(message)s",
        stream=sys.stderr,
    )
    if not args.verbose:
        logging.getLogger("kopf").setLevel(logging.WARNING)
    options = OperatorOptions(
        kubeconfig=args.kubeconfig,
        context=args.context,
        namespace=args.namespace,
        trust_domain=args.trust_domain,
        ca_dir=args.ca_dir,
        xds_host=args.xds_host,
        xds_port=args.xds_port,
        admin_host=args.admin_host,
        admin_port=args.admin_port,
        webhook_host=args.webhook_host,
        webhook_port=args.webhook_port,
        watch_server_timeout=args.watch_server_timeout,
        watch_client_timeout=args.watch_client_timeout,
        resync_period=args.resync_period,
        status_interval=args.status_interval,
        debounce=args.debounce,
        max_debounce=args.max_debounce,
        leader_election=not args.no_leader_election,
        lease_name=args.lease_name,
        lease_duration=args.lease_duration,
        renew_period=args.renew_period,
        ratelimit_configmap=args.ratelimit_configmap,
    )
    if args.webhook_names:
        options.webhook_names = tuple(args.webhook_names)
    if args.identity:
        options.identity = args.identity
    elif os.environ.get("POD_NAME"):
        options.identity = os.environ["POD_NAME"]
    if args.config is not None:
        return _main_in_cluster(args, options)
    try:
        gc_policy.configure()
        return asyncio.run(run(options))
    except KubeError as e:
        print(f"meshwork-controller: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _main_in_cluster(args: argparse.Namespace, options: OperatorOptions) -> int:
    from mesh_operator.kube import incluster
    from mesh_operator.kube.config import ConfigError, parse

    try:
        cfg = parse(Path(args.config).read_text(), namespace=args.namespace or os.environ.get("POD_NAMESPACE"))
    except OSError as e:
        print(f"meshwork-controller: cannot read {args.config}: {e}", file=sys.stderr)
        return 2
    except ConfigError as e:
        print(f"meshwork-controller: {args.config}: {e}", file=sys.stderr)
        return 2
    if not args.verbose:
        logging.getLogger().setLevel(getattr(logging, cfg.log_level.upper(), logging.INFO))
    host = args.listen_host
    options.namespace = cfg.namespace
    options.trust_domain = cfg.trust_domain
    options.xds_host, options.xds_port = host, cfg.xds_port
    options.admin_host, options.admin_port = "127.0.0.1", cfg.metrics_port  # admin stays on loopback
    options.webhook_host, options.webhook_port = host, cfg.webhook_port
    options.webhook_names = (*cfg.webhook_names, *(args.webhook_names or ()))
    options.lease_name, options.lease_duration = cfg.lease_name, cfg.lease_duration
    options.injection = cfg.injection
    try:
        gc_policy.configure()
        return asyncio.run(incluster.run(cfg, options, host=host))
    except KubeError as e:
        print(f"meshwork-controller: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
