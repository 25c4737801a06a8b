#!/usr/bin/env bash
# Build (or reuse) the binaries of the Kubernetes test tier: kube-apiserver and helm.
#
# No Python package ships kube-apiserver and kind/setup-envtest cannot run here, so it is built from the Go module
# proxy (DESIGN.md §3): a throwaway Go module requires k8s.io/kubernetes vX.Y.Z and replaces every k8s.io/* staging
# module (listed at v0.0.0 in that version's go.mod) with v0.Y.Z. helm is a plain `go install`.
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

build_apiserver() {
    local start work modfile staging n
    start=$SECONDS
    work="$(mktemp -d "$OUT/.build-apiserver.XXXXXX")"
    WORK_DIRS+=("$work")
    log "building kube-apiserver $K8S_VERSION (staging modules at $STAGING_VERSION) in $work"
    log "a cold build took 3-5 minutes on 2 cores here (up to ~25 on slow machines); it runs at nice $NICE"

    modfile="$(cd "$work" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
    [[ -n "$modfile" && -f "$modfile" ]] || die "could not download the go.mod of k8s.io/kubernetes@$K8S_VERSION from $(go env GOPROXY)"
    staging="$(awk '$1 ~ /^k8s\.io\// && $2 == "v0.0.0" { print $1 }' "$modfile" | sort -u)"
    n="$(printf '%s\n' "$staging" | grep -c . || true)"
    [[ "$n" -gt 0 ]] || die "no k8s.io/* staging modules at v0.0.0 found in $modfile"
    log "replacing $n staging modules with $STAGING_VERSION"

    {
        echo "module meshwork.local/kube-apiserver-build"
        echo
        echo "go $(awk '$1 == "go" { print $2; exit }' "$modfile")"
        echo
        echo "require k8s.io/kubernetes $K8S_VERSION"
        echo
        echo "replace ("
        for m in $staging; do echo "	$m => $m $STAGING_VERSION"; done
        echo ")"
    } >"$work/go.mod"

    local date ldflags
    date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    ldflags="-s -w"
    ldflags+=" -X k8s.io/component-base/version.gitVersion=$K8S_VERSION"
    ldflags+=" -X k8s.io/component-base/version.gitMajor=1"
    ldflags+=" -X k8s.io/component-base/version.gitMinor=$K8S_MINOR"
    ldflags+=" -X k8s.io/component-base/version.gitTreeState=clean"
    ldflags+=" -X k8s.io/component-base/version.buildDate=$date"
    ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION"
    ldflags+=" -X k8s.io/client-go/pkg/version.gitMajor=1"
    ldflags+=" -X k8s.io/client-go/pkg/version.gitMinor=$K8S_MINOR"

    log "resolving module graph"
    (cd "$work" && go get "k8s.io/kubernetes/cmd/kube-apiserver@$K8S_VERSION" >&2) ||
        die "resolving k8s.io/kubernetes@$K8S_VERSION failed (see above); is the Go module proxy reachable? GOPROXY=$(go env GOPROXY)"
    log "module graph resolved after $(fmt_elapsed $((SECONDS - start))); compiling"
    (cd "$work" && CGO_ENABLED=0 nice -n "$NICE" go build -trimpath -tags selinux,notest -ldflags "$ldflags" \
        -o "$work/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver >&2) ||
        die "go build of kube-apiserver $K8S_VERSION failed (see above)"
    mv -f "$work/kube-apiserver" "$OUT/kube-apiserver"
    log "kube-apiserver built in $(fmt_elapsed $((SECONDS - start)))"
}

build_helm() {
    local start=$SECONDS
    log "building helm $HELM_VERSION"
    GOBIN="$OUT" CGO_ENABLED=0 nice -n "$NICE" go install -trimpath \
        -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
        "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2 ||
        die "go install helm.sh/helm/v3/cmd/helm@$HELM_VERSION failed (see above)"
    log "helm built in $(fmt_elapsed $((SECONDS - start)))"
}

need_go() {
    command -v go >/dev/null 2>&1 || die "'go' is not on PATH: the k8s test tier builds kube-apiserver and helm from \
the Go module proxy; install Go >= 1.25 (https://go.dev/dl/) or provide cached binaries in $OUT"
}

total_start=$SECONDS
if apiserver_ok; then log "kube-apiserver $K8S_VERSION cached in $OUT"; else need_go && build_apiserver; fi
apiserver_ok || die "$OUT/kube-apiserver --version does not print 'Kubernetes $K8S_VERSION' (got: $("$OUT/kube-apiserver" --version 2>&1 || true))"
if helm_ok; then log "helm $HELM_VERSION cached in $OUT"; else need_go && build_helm; fi
helm_ok || die "$OUT/helm version --short does not start with $HELM_VERSION (got: $("$OUT/helm" version --short 2>&1 || true))"

log "$("$OUT/kube-apiserver" --version); helm $("$OUT/helm" version --short)"
log "ready in $(fmt_elapsed $((SECONDS - total_start))): $OUT"
echo "$OUT"
