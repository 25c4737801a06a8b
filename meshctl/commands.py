"""One function per subcommand: arguments in, exit code out."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from mesh_operator import render as render_lib
from mesh_operator.loader import load_paths
from meshctl.output import dump, err
from xds_server import gc_policy


def validate(args: argparse.Namespace) -> int:
    loaded = load_paths(args.paths)
    for problem in loaded.problems:
        print(problem, file=sys.stderr if problem.violation.severity == "error" else sys.stdout)
    if loaded.errors:
        print(f"{len(loaded.errors)} error(s)", file=sys.stderr)
        return 1
    print(
        f"{len(loaded.objects)} object(s) valid" + (f", {len(loaded.warnings)} warning(s)" if loaded.warnings else "")
    )
    return 0


def render(args: argparse.Namespace) -> int:
    loaded = load_paths(args.paths)
    for problem in loaded.problems:
        err(str(problem))
    try:
        if args.bootstrap:
            data = render_lib.bootstrap(loaded.state(), args.node, certs_dir=args.certs)
        else:
            data = render_lib.resources(loaded.state(), args.node)
    except render_lib.RenderError as e:
        err(str(e))
        return 1
    dump(data, args.output)
    return 0


def local_run(args: argparse.Namespace) -> int:
    from mesh_operator.local.runner import LocalOptions, run

    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    if not Path(args.directory).is_dir():
        err(f"{args.directory} is not a directory")
        return 2
    options = LocalOptions(
        directory=Path(args.directory),
        state_dir=Path(args.state_dir) if args.state_dir else None,
        xds_port=args.xds_port,
        admin_port=args.admin_port,
        start_workloads=not args.no_workloads,
        envoy_log_level=args.envoy_log_level,
        envoy_concurrency=args.envoy_concurrency,
        delta=args.delta,
        preflight=not args.no_preflight,
        ca_cert=Path(args.ca_cert) if args.ca_cert else None,
        ca_key=Path(args.ca_key) if args.ca_key else None,
        ca_chain=Path(args.ca_chain) if args.ca_chain else None,
    )
    if options.envoy_concurrency is not None and options.envoy_concurrency < 1:
        err(f"--envoy-concurrency must be at least 1, got {options.envoy_concurrency}")
        return 2
    if (options.ca_cert is None) != (options.ca_key is None):
        err("--ca-cert and --ca-key go together")
        return 2
    gc_policy.configure()
    return asyncio.run(run(options))
