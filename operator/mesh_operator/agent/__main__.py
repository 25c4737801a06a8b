"""``python -m mesh_operator.agent run | wait | csr``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="meshwork-agent")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="certificate, bootstrap, Envoy, renewals; drain on SIGTERM")
    w = sub.add_parser("wait", help="block until the sidecar is ready (classic sidecars' postStart)")
    w.add_argument("--timeout", type=float, default=600.0)
    c = sub.add_parser("csr", help="(internal) make a key and a CSR")
    c.add_argument("--identity", required=True)
    c.add_argument("--key-out", required=True, type=Path)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "csr":
        from mesh_operator.agent.csr import make

        sys.stdout.write(make(args.identity, args.key_out))
        return 0
    if args.command == "wait":
        from mesh_operator.agent.run import wait_ready

        return 0 if wait_ready(int(os.environ.get("MESHWORK_HEALTH_PORT", "15020")), args.timeout) else 1
    from mesh_operator.agent.config import AgentConfig, ConfigError
    from mesh_operator.agent.run import Agent

    try:
        cfg = AgentConfig.from_env()
    except ConfigError as err:
        print(f"meshwork-agent: {err}", file=sys.stderr)
        return 2
    return Agent(cfg).run()


sys.exit(main())
