# shellcheck shell=bash
# Sourced by build-binaries.sh and build-cluster-binaries.sh: how Kubernetes components and helm are built.
#
# Kubernetes components: a throwaway Go module requires k8s.io/kubernetes $K8S_VERSION and replaces every k8s.io/*
# staging module (listed at v0.0.0 in that version's go.mod) with v0.Y.Z; then ONE `go get` resolves the module
# graph for every component asked for and ONE `go build -o DIR/ cmd/a cmd/b ...` builds them: the packages they
# share compile once and the links run in parallel (docs/notes/coldbuild.md has the figures).
# The caller sets K8S_VERSION, K8S_MINOR, STAGING_VERSION, HELM_VERSION, NICE, OUT, the array WORK_DIRS (removed at
# exit) and the functions log, die and fmt_elapsed.

# k8s_build COMPONENT... : build k8s.io/kubernetes/cmd/COMPONENT for each into $OUT.
k8s_build() {
    local start=$SECONDS work modfile staging m date ldflags pkg c
    local pkgs=() gets=()
    work="$(mktemp -d "$OUT/.build-k8s.XXXXXX")"
    WORK_DIRS+=("$work")
    log "building $* $K8S_VERSION (staging modules at $STAGING_VERSION) in one go build in $work at nice $NICE"
    modfile="$(cd "$work" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
    [[ -n "$modfile" && -f "$modfile" ]] || die "could not download the go.mod of k8s.io/kubernetes@$K8S_VERSION from $(go env GOPROXY)"
    staging="$(awk '$1 ~ /^k8s\.io\// && $2 == "v0.0.0" { print $1 }' "$modfile" | sort -u)"
    [[ -n "$staging" ]] || die "no k8s.io/* staging modules at v0.0.0 found in $modfile"
    {
        echo "module meshwork.local/kube-components-build"
        echo
        echo "go $(awk '$1 == "go" { print $2; exit }' "$modfile")"
        echo
        echo "require k8s.io/kubernetes $K8S_VERSION"
        echo
        echo "replace ("
        for m in $staging; do echo "	$m => $m $STAGING_VERSION"; done
        echo ")"
    } >"$work/go.mod"
    date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    ldflags="-s -w"
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$K8S_MINOR"
        ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$date"
    done
    for c in "$@"; do
        pkgs+=("k8s.io/kubernetes/cmd/$c")
        gets+=("k8s.io/kubernetes/cmd/$c@$K8S_VERSION")
    done
    (cd "$work" && go get "${gets[@]}" >&2) ||
        die "resolving k8s.io/kubernetes@$K8S_VERSION failed (see above); is the Go module proxy reachable? GOPROXY=$(go env GOPROXY)"
    log "module graph resolved after $(fmt_elapsed $((SECONDS - start))); compiling"
    mkdir -p "$work/bin"
    # -gcflags=all=-dwarf=false: no DWARF is generated for any package (-ldflags -w already drops it from the binary;
    # without the compile flag every package still computes it): ~10 % less compile CPU in a cold build, the same
    # program (stack traces come from the pclntab, not DWARF). Every Go build of `make test` uses both flags.
    (cd "$work" && CGO_ENABLED=0 nice -n "$NICE" go build -trimpath -gcflags=all=-dwarf=false -tags selinux,notest -ldflags "$ldflags" \
        -o "$work/bin/" "${pkgs[@]}" >&2) || die "go build of $* $K8S_VERSION failed (see above)"
    for c in "$@"; do mv -f "$work/bin/$c" "$OUT/$c"; done
    log "$* built in $(fmt_elapsed $((SECONDS - start)))"
}

# helm_build: `go install helm.sh/helm/v3/cmd/helm@$HELM_VERSION` into $OUT.
helm_build() {
    local start=$SECONDS
    log "building helm $HELM_VERSION at nice $NICE"
    GOBIN="$OUT" CGO_ENABLED=0 nice -n "$NICE" go install -trimpath -gcflags=all=-dwarf=false \
        -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
        "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2 ||
        die "go install helm.sh/helm/v3/cmd/helm@$HELM_VERSION failed (see above)"
    log "helm built in $(fmt_elapsed $((SECONDS - start)))"
}
