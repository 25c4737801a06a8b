#!/usr/bin/env bash
# Build (or reuse) the binaries of the Kubernetes test tier: kube-apiserver and helm.
#
# No Python package ships kube-apiserver and kind/setup-envtest cannot run here, so it is built from the Go module
# proxy (DESIGN.md §3): a throwaway Go module requires k8s.io/kubernetes vX.Y.Z and replaces every k8s.io/* staging
# module (listed at v0.0.0 in that version's go.mod) with v0.Y.Z. helm is a plain `go install` (lib-build.sh).
# build-cluster-binaries.sh builds kube-apiserver together with the cluster's components (one `go build`) and
# helm alongside them; run after it, this script only checks their versions.
#
# Binaries go to ${MESHWORK_K8S_CACHE:-$HOME/.cache/meshwork/k8s}/<version>/, never into the repository.
# Idempotent: a cached binary that answers `--version` with the expected version is reused (well under a second).
#
# Environment:
#   MESHWORK_K8S_VERSION  Kubernetes version (default v1.35.4)
#   MESHWORK_HELM_VERSION helm version (default v3.22.0)
#   MESHWORK_K8S_CACHE    cache root (default ~/.cache/meshwork/k8s)
#   MESHWORK_BUILD_NICE   nice level of the go builds (default 10)
# Prints the directory holding the binaries as its last line on stdout; progress goes to stderr.
set -euo pipefail

K8S_VERSION="${MESHWORK_K8S_VERSION:-v1.35.4}"
HELM_VERSION="${MESHWORK_HELM_VERSION:-v3.22.0}"
CACHE_ROOT="${MESHWORK_K8S_CACHE:-$HOME/.cache/meshwork/k8s}"
NICE="${MESHWORK_BUILD_NICE:-10}"
OUT="$CACHE_ROOT/$K8S_VERSION"

log() { printf '[k8s-binaries] %s\n' "$*" >&2; }
die() {
    printf '[k8s-binaries] ERROR: %s\n' "$*" >&2
    exit 1
}

[[ "$K8S_VERSION" =~ ^v1\.([0-9]+)\.([0-9]+)$ ]] || die "MESHWORK_K8S_VERSION must look like v1.35.4, got '$K8S_VERSION'"
K8S_MINOR="${BASH_REMATCH[1]}"
STAGING_VERSION="v0.${K8S_MINOR}.${BASH_REMATCH[2]}"


mkdir -p "$OUT"
# One build at a time per cache directory (parallel `make` jobs, two terminals, ...).
if command -v flock >/dev/null 2>&1; then
    exec 9>"$OUT/.lock"
    flock 9
fi

apiserver_ok() { [[ -x "$OUT/kube-apiserver" ]] && "$OUT/kube-apiserver" --version 2>/dev/null | grep -qx "Kubernetes $K8S_VERSION"; }
helm_ok() { [[ -x "$OUT/helm" ]] && "$OUT/helm" version --short 2>/dev/null | grep -q "^$HELM_VERSION"; }

WORK_DIRS=()
cleanup() { for d in "${WORK_DIRS[@]}"; do rm -rf "$d"; done; }
trap cleanup EXIT

fmt_elapsed() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

# k8s_build (one `go build` for the components asked for) and helm_build.
# shellcheck source=lib-build.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib-build.sh"

need_go() {
    command -v go >/dev/null 2>&1 || die "'go' is not on PATH: the k8s test tier builds kube-apiserver and helm from \
the Go module proxy; install Go >= 1.25 (https://go.dev/dl/) or provide cached binaries in $OUT"
}

total_start=$SECONDS
if apiserver_ok; then log "kube-apiserver $K8S_VERSION cached in $OUT"; else need_go && k8s_build kube-apiserver; fi
apiserver_ok || die "$OUT/kube-apiserver --version does not print 'Kubernetes $K8S_VERSION' (got: $("$OUT/kube-apiserver" --version 2>&1 || true))"
if helm_ok; then log "helm $HELM_VERSION cached in $OUT"; else need_go && helm_build; fi
helm_ok || die "$OUT/helm version --short does not start with $HELM_VERSION (got: $("$OUT/helm" version --short 2>&1 || true))"

log "$("$OUT/kube-apiserver" --version); helm $("$OUT/helm" version --short)"
log "ready in $(fmt_elapsed $((SECONDS - total_start))): $OUT"
echo "$OUT"
