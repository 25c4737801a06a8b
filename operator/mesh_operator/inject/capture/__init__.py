"""Transparent traffic capture: the iptables rules of one pod, from one pure function (:func:`rules`).

The same function serves the init container (``python -m mesh_operator.inject.capture ARGS``, which needs only
``NET_ADMIN`` and ``NET_RAW``), the goldens, and later a CNI plugin. The rules live in the pod's own network
namespace, ``nat`` table, applied atomically by one ``iptables-restore --noflush``::

    PREROUTING -p tcp -> MESHWORK_INBOUND
        RETURN   admin, health and excluded destination ports; excluded source CIDRs
                 (the sidecar's inbound/outbound ports are captured too: never an open proxy)
        -> MESHWORK_IN_REDIRECT: REDIRECT to the sidecar's inbound port (mTLS terminated there)
    OUTPUT -p tcp -> MESHWORK_OUTPUT
        -> MESHWORK_IN_REDIRECT   the proxy's own connections over lo to a pod address (it calls its own pod
                                  as a service endpoint: that is inbound traffic)
        RETURN   other lo traffic of the app to the pod's own address (never leaves the pod)
        RETURN   everything the proxy's UID or GID sends (so Envoy's upstream connections are never looped)
        RETURN   127.0.0.0/8, admin, health and excluded destination ports, excluded destination CIDRs
        -> MESHWORK_REDIRECT: REDIRECT to the sidecar's outbound port

Only TCP is captured (UDP, e.g. DNS, goes out untouched). REDIRECT from OUTPUT lands on 127.0.0.1, so Envoy's
outbound listener binds 127.0.0.1 only; REDIRECT from PREROUTING lands on the receiving interface's address, so
the inbound listener binds 0.0.0.0 (it accepts only mesh mTLS).
"""

from __future__ import annotations

import argparse
import ipaddress
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

INBOUND: Final = "MESHWORK_INBOUND"
IN_REDIRECT: Final = "MESHWORK_IN_REDIRECT"
OUTPUT: Final = "MESHWORK_OUTPUT"
REDIRECT: Final = "MESHWORK_REDIRECT"


@dataclass(frozen=True, slots=True)
class CaptureSpec:
    proxy_uid: int = 1337
    proxy_gid: int = 1337
    inbound_port: int = 15006
    outbound_port: int = 15001
    #: Ports of the sidecar itself (admin, health): never captured in either direction.
    proxy_ports: tuple[int, ...] = (15000, 15020)
    capture_inbound: bool = True
    exclude_inbound_ports: tuple[int, ...] = ()
    exclude_outbound_ports: tuple[int, ...] = ()
    exclude_inbound_cidrs: tuple[str, ...] = ()
    exclude_outbound_cidrs: tuple[str, ...] = ()

    def args(self) -> list[str]:
        """Command-line arguments that rebuild this spec in ``python -m mesh_operator.inject.capture``."""

        def join(values: Sequence[object]) -> str:
            return ",".join(str(v) for v in values)

        out = [
            f"--proxy-uid={self.proxy_uid}",
            f"--proxy-gid={self.proxy_gid}",
            f"--inbound-port={self.inbound_port}",
            f"--outbound-port={self.outbound_port}",
            f"--proxy-ports={join(self.proxy_ports)}",
        ]
        if not self.capture_inbound:
            out.append("--no-inbound")
        for flag, values in (
            ("--exclude-inbound-ports", self.exclude_inbound_ports),
            ("--exclude-outbound-ports", self.exclude_outbound_ports),
            ("--exclude-inbound-cidrs", self.exclude_inbound_cidrs),
            ("--exclude-outbound-cidrs", self.exclude_outbound_cidrs),
        ):
            if values:
                out.append(f"{flag}={join(values)}")
        return out


def _multiport(ports: Sequence[int]) -> list[str]:
    """``--dport`` match lines, 15 ports per multiport rule (the module's limit)."""
    ports = sorted(set(ports))
    if len(ports) == 1:
        return [f"--dport {ports[0]}"]
    return [f"-m multiport --dports {','.join(str(p) for p in ports[i : i + 15])}" for i in range(0, len(ports), 15)]


def rules(spec: CaptureSpec) -> str:
    """The ``iptables-restore`` input for one pod (deterministic: the goldens compare it byte for byte)."""
    lines = ["*nat"]
    chains = [INBOUND, IN_REDIRECT, OUTPUT, REDIRECT] if spec.capture_inbound else [OUTPUT, REDIRECT]
    lines += [f":{c} - [0:0]" for c in chains]
    if spec.capture_inbound:
        lines.append(f"-A {IN_REDIRECT} -p tcp -j REDIRECT --to-ports {spec.inbound_port}")
    lines.append(f"-A {REDIRECT} -p tcp -j REDIRECT --to-ports {spec.outbound_port}")
    if spec.capture_inbound:
        lines.append(f"-A PREROUTING -p tcp -j {INBOUND}")
        # Not the sidecar's own inbound/outbound ports: a peer connecting to them straight is captured like any
        # other (into mTLS), so nobody can use the outbound listener as an open proxy with this pod's identity.
        never = (*spec.proxy_ports, *spec.exclude_inbound_ports)
        lines += [f"-A {INBOUND} -p tcp {m} -j RETURN" for m in _multiport(never)]
        lines += [f"-A {INBOUND} -p tcp -s {c} -j RETURN" for c in spec.exclude_inbound_cidrs]
        lines.append(f"-A {INBOUND} -p tcp -j {IN_REDIRECT}")
    lines.append(f"-A OUTPUT -p tcp -j {OUTPUT}")
    uid, gid = spec.proxy_uid, spec.proxy_gid
    if spec.capture_inbound:
        lines.append(f"-A {OUTPUT} -o lo ! -d 127.0.0.1/32 -m owner --uid-owner {uid} -j {IN_REDIRECT}")
        lines.append(f"-A {OUTPUT} -o lo ! -d 127.0.0.1/32 -m owner --gid-owner {gid} -j {IN_REDIRECT}")
    lines.append(f"-A {OUTPUT} -o lo -j RETURN")
    lines.append(f"-A {OUTPUT} -m owner --uid-owner {uid} -j RETURN")
    lines.append(f"-A {OUTPUT} -m owner --gid-owner {gid} -j RETURN")
    lines.append(f"-A {OUTPUT} -d 127.0.0.0/8 -j RETURN")
    never_out = (*spec.proxy_ports, *spec.exclude_outbound_ports)
    lines += [f"-A {OUTPUT} -p tcp {m} -j RETURN" for m in _multiport(never_out)]
    lines += [f"-A {OUTPUT} -d {c} -j RETURN" for c in spec.exclude_outbound_cidrs]
    lines.append(f"-A {OUTPUT} -p tcp -j {REDIRECT}")
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


# --- the init container's entry point ------------------------------------------------------------------------


def _ports(text: str) -> tuple[int, ...]:
    out = []
    for item in filter(None, (s.strip() for s in text.split(","))):
        if not item.isdigit() or not 1 <= int(item) <= 65535:
            raise argparse.ArgumentTypeError(f"{item!r} is not a port (1-65535)")
        out.append(int(item))
    return tuple(out)


def _cidrs(text: str) -> tuple[str, ...]:
    out = []
    for item in filter(None, (s.strip() for s in text.split(","))):
        try:
            out.append(str(ipaddress.IPv4Network(item)))
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{item!r} is not an IPv4 CIDR: {exc}") from None
    return tuple(out)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="meshwork-capture", description="install a pod's traffic-capture rules")
    d = CaptureSpec()
    p.add_argument("--proxy-uid", type=int, default=d.proxy_uid)
    p.add_argument("--proxy-gid", type=int, default=d.proxy_gid)
    p.add_argument("--inbound-port", type=int, default=d.inbound_port)
    p.add_argument("--outbound-port", type=int, default=d.outbound_port)
    p.add_argument("--proxy-ports", type=_ports, default=d.proxy_ports)
    p.add_argument("--no-inbound", action="store_true", help="capture outbound traffic only")
    p.add_argument("--exclude-inbound-ports", type=_ports, default=())
    p.add_argument("--exclude-outbound-ports", type=_ports, default=())
    p.add_argument("--exclude-inbound-cidrs", type=_cidrs, default=())
    p.add_argument("--exclude-outbound-cidrs", type=_cidrs, default=())
    p.add_argument("--dry-run", action="store_true", help="print the rules instead of applying them")
    p.add_argument("--iptables-restore", default="iptables-restore", help="the binary (default: from PATH)")
    return p


def spec_from_args(args: argparse.Namespace) -> CaptureSpec:
    return CaptureSpec(
        proxy_uid=args.proxy_uid,
        proxy_gid=args.proxy_gid,
        inbound_port=args.inbound_port,
        outbound_port=args.outbound_port,
        proxy_ports=args.proxy_ports,
        capture_inbound=not args.no_inbound,
        exclude_inbound_ports=args.exclude_inbound_ports,
        exclude_outbound_ports=args.exclude_outbound_ports,
        exclude_inbound_cidrs=args.exclude_inbound_cidrs,
        exclude_outbound_cidrs=args.exclude_outbound_cidrs,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    text = rules(spec_from_args(args))
    if args.dry_run:
        sys.stdout.write(text)
        return 0
    binary = shutil.which(args.iptables_restore)
    if binary is None:
        print(f"meshwork-capture: {args.iptables_restore} not found", file=sys.stderr)
        return 2
    # -w: wait for the xtables lock rather than fail when something else holds it.
    done = subprocess.run([binary, "--noflush", "-w", "5"], input=text, text=True, capture_output=True, check=False)
    if done.returncode != 0:
        print(f"meshwork-capture: iptables-restore failed: {done.stderr.strip()}\n{text}", file=sys.stderr)
        return 1
    sys.stdout.write(text)
    return 0
