#!/usr/bin/env bash
# The e2e stories (e2e/) on kind, for users with Docker: create a kind cluster, build the control-plane and sidecar
# images with Docker from the repository's Containerfiles, load them into the kind node (`kind load docker-image`),
# and run the stories against it through the e2e fixtures' existing-cluster mode (MESHWORK_E2E_KUBECONFIG +
# MESHWORK_E2E_IMAGES: the project's own single-node cluster is not started, no image is imported by the fixtures,
# everything else is identical). The kind cluster is deleted at the end unless KIND_KEEP=1.
#
#   scripts/kind/e2e.sh                          # every story
#   scripts/kind/e2e.sh e2e/test_scaling.py -x   # arguments go to pytest (default: e2e)
#
# Needs: docker (running), kind, kubectl and helm (the project's cached ones from `make k8s-cluster-binaries` /
# `make k8s-binaries` are used when present, else PATH), and `make install` (.venv).
# Settings (environment): KIND_CLUSTER (meshwork-e2e), KIND_NODE_IMAGE (kind's default), KIND_KEEP (0),
# KIND_REUSE (0: fail if the cluster exists; 1: use it), IMAGE_TAG (e2e), PYTHON (.venv/bin/python).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
CLUSTER="${KIND_CLUSTER:-meshwork-e2e}"
TAG="${IMAGE_TAG:-e2e}"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
CONTROL_PLANE="localhost/meshwork/control-plane:$TAG"
SIDECAR="localhost/meshwork/sidecar:$TAG"

say() { printf '[kind-e2e] %s\n' "$*" >&2; }
die() { say "error: $*"; exit 2; }

command -v docker >/dev/null || die "docker is not installed"
command -v kind >/dev/null || die "kind is not installed (https://kind.sigs.k8s.io/docs/user/quick-start/#installation)"
docker info >/dev/null 2>&1 || die "docker info failed: is the Docker daemon running and reachable?"
[ -x "$PYTHON" ] || die "$PYTHON missing: run \`make install\`"
"$PYTHON" - <<'PY' || die "kubectl or helm missing (neither cached by make k8s-cluster-binaries nor on PATH)"
from mesh_operator.testing.existing_cluster import tool
for name in ("kubectl", "helm"):
    print(f"[kind-e2e] {name}: {tool(name)}")
PY

WORK="$(mktemp -d)"
KUBECONFIG_FILE="$WORK/kubeconfig"
created=0
cleanup() {
    if [ "$created" = 1 ] && [ "${KIND_KEEP:-0}" != 1 ]; then
        say "deleting kind cluster $CLUSTER"
        kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || say "kind delete cluster --name $CLUSTER failed"
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
    [ "${KIND_REUSE:-0}" = 1 ] || die "kind cluster $CLUSTER exists: delete it, or set KIND_REUSE=1 to use it"
    say "using the existing kind cluster $CLUSTER"
    kind get kubeconfig --name "$CLUSTER" >"$KUBECONFIG_FILE"
else
    say "creating kind cluster $CLUSTER"
    created=1
    kind create cluster --name "$CLUSTER" --kubeconfig "$KUBECONFIG_FILE" --wait 180s \
        ${KIND_NODE_IMAGE:+--image "$KIND_NODE_IMAGE"}
fi

say "building $CONTROL_PLANE and $SIDECAR with Docker (images/*/Containerfile)"
docker build -q -f images/control-plane/Containerfile -t "$CONTROL_PLANE" .
docker build -q -f images/sidecar/Containerfile -t "$SIDECAR" .
say "loading the images into the kind node"
kind load docker-image --name "$CLUSTER" "$CONTROL_PLANE" "$SIDECAR"

[ "$#" -gt 0 ] || set -- e2e
say "running: pytest $*"
status=0
MESHWORK_E2E_KUBECONFIG="$KUBECONFIG_FILE" \
MESHWORK_E2E_IMAGES="control-plane=$CONTROL_PLANE,sidecar=$SIDECAR" \
    "$PYTHON" -m pytest -p no:cacheprovider --ignore=e2e/test_kind.py -rs "$@" || status=$?
exit "$status"
