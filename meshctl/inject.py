"""``meshctl inject``: offline sidecar injection of manifests (the webhook's code, for GitOps)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import yaml

from mesh_operator.inject import InjectionError, InjectionSettings, inject_documents
from meshctl.output import err


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    d = InjectionSettings()
    p = sub.add_parser("inject", help="add the sidecar to the pods of manifests (Pods, Deployments, Jobs, ...)")
    p.add_argument("-f", "--filename", dest="path", required=True, help="YAML file (multi-document), or - for stdin")
    p.add_argument("-o", "--output", help="write here instead of stdout")
    p.add_argument("--proxy-image", default=d.proxy_image, help=f"the sidecar image (default {d.proxy_image})")
    p.add_argument("--control-plane", default=d.control_plane, help=f"xDS address (default {d.control_plane})")
    p.add_argument("--mesh-namespace", default=d.mesh_namespace, help="the mesh's own namespace (never injected)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        text = sys.stdin.read() if args.path == "-" else Path(args.path).read_text()
    except OSError as e:
        err(f"{args.path}: {e.strerror}")
        return 1
    settings = dataclasses.replace(
        InjectionSettings(),
        proxy_image=args.proxy_image,
        control_plane=args.control_plane,
        mesh_namespace=args.mesh_namespace,
    )
    try:
        out, messages = inject_documents(text, settings)
    except InjectionError as e:
        err(f"{args.path}: {e}")
        return 1
    except yaml.YAMLError as e:
        err(f"{args.path}: not valid YAML: {e}")
        return 1
    for m in messages:
        err(m)
    if args.output:
        Path(args.output).write_text(out)
    else:
        sys.stdout.write(out)
    return 0
