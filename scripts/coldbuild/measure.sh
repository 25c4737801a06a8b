#!/usr/bin/env bash
# Measure the cold build time of every prerequisite of `make test`, one after the other in make's order, in an
# empty HOME (so the Go build and module caches, ~/.cache/meshwork and the pip cache are all empty) without
# touching the shared caches. Each step's wall, user and sys seconds (children included) go to a TSV file.
#
#   scripts/coldbuild/measure.sh [COLD_HOME] [RESULTS.tsv] [STEP...]
#
# COLD_HOME defaults to /tmp/cold-$$ (created; it must not exist yet). The machine's Go settings ($GOENV, e.g.
# GOFLAGS=-buildvcs=false GOTOOLCHAIN=local) are copied into it, since they live under HOME. Builds run at
# MESHWORK_BUILD_NICE (default 19 here). Delete COLD_HOME afterwards (its module cache is read-only: chmod -R u+w).
# Steps (default all, in make test's order): cluster-binaries images gateway-api-crds conformance-suite echo-image
# k8s-binaries otelcol ratelimit; or `test-prereqs`: `make test-prereqs` whole, each recipe line timed. `cluster-binaries` includes build-binaries.sh (kube-apiserver + helm), which it
# runs first; `k8s-binaries` is then a cache hit, as in `make test`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
COLD="${1:-/tmp/cold-$$}"
RESULTS="${2:-$COLD.tsv}"
shift 2 2>/dev/null || shift $#
STEPS=("$@")
[[ ${#STEPS[@]} -gt 0 ]] || STEPS=(cluster-binaries images gateway-api-crds conformance-suite echo-image k8s-binaries otelcol ratelimit)

[[ ! -e "$COLD" ]] || { echo "$COLD exists: pick an empty path" >&2; exit 1; }
goenv="$(go env GOENV)"
mkdir -p "$COLD/.config/go"
[[ -f "$goenv" ]] && cp "$goenv" "$COLD/.config/go/env"
export HOME="$COLD" MESHWORK_BUILD_NICE="${MESHWORK_BUILD_NICE:-19}"
unset GOCACHE GOMODCACHE GOPATH MESHWORK_K8S_CACHE MESHWORK_IMAGES_CACHE MESHWORK_OTELCOL_CACHE \
    MESHWORK_RATELIMIT_CACHE MESHWORK_GATEWAY_API_CACHE
[[ "$(go env GOCACHE)" == "$COLD"/* && "$(go env GOMODCACHE)" == "$COLD"/* ]] || { echo "go caches not under $COLD" >&2; exit 1; }
echo "# GOPROXY=$(go env GOPROXY) GOFLAGS=$(go env GOFLAGS) HOME=$COLD nice=$MESHWORK_BUILD_NICE $(date -u +%FT%TZ) load: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$RESULTS"
printf 'step\twall_s\tuser_s\tsys_s\tcpu_s\trc\n' >>"$RESULTS"

cmd_of() {
    case "$1" in
        cluster-binaries) echo "scripts/k8s/build-cluster-binaries.sh" ;;
        k8s-binaries) echo "scripts/k8s/build-binaries.sh" ;;
        images) echo "images/build.sh" ;;
        gateway-api-crds) echo "scripts/gateway-api/fetch-crds.sh" ;;
        conformance-suite) echo "make --no-print-directory conformance-suite" ;;
        echo-image) echo "scripts/gateway-api/build-echo-image.sh" ;;
        otelcol) echo "scripts/otelcol/build.sh" ;;
        ratelimit) echo "scripts/ratelimit/build.sh" ;;
        # Everything `make test` builds before its first test, as it builds them (the parallel phase included);
        # each recipe line is timed too, into $COLD.recipes.tsv.
        test-prereqs) echo "TIMED_SH_LOG=$COLD.recipes.tsv make --no-print-directory SHELL=$ROOT/scripts/coldbuild/timed-sh test-prereqs" ;;
        *) echo "unknown step $1" >&2; return 1 ;;
    esac
}

cd "$ROOT"
for step in "${STEPS[@]}"; do
    cmd="$(cmd_of "$step")"
    log="$COLD.$step.log"
    echo "[measure] $step: $cmd (log $log)" >&2
    # bash's `times` reports the children's user and sys CPU (every process of the step, go's compilers included).
    rc=0
    out="$(
        start=$(date +%s.%N)
        bash -c "$cmd" >"$log" 2>&1 || rc=$?
        end=$(date +%s.%N)
        times >"$COLD/.times" # not in a pipeline or $(...): a forked shell's children's times start at 0
        echo "$start $end $rc $(tail -1 "$COLD/.times")"
    )"
    read -r start end rc cu cs <<<"$out"
    to_s() { awk -v t="$1" 'BEGIN { n = split(t, a, /[ms]/); printf "%.1f", a[1] * 60 + a[2] }'; }
    u="$(to_s "$cu")"
    s="$(to_s "$cs")"
    wall="$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')"
    cpu="$(awk -v a="$u" -v b="$s" 'BEGIN { printf "%.1f", a + b }')"
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$step" "$wall" "$u" "$s" "$cpu" "$rc" | tee -a "$RESULTS" >&2
    [[ "$rc" -eq 0 ]] || { echo "[measure] $step failed (rc $rc): tail of $log:" >&2; tail -20 "$log" >&2; exit 1; }
done
du -sh "$COLD/go/pkg/mod" "$COLD/.cache/go-build" 2>/dev/null | sed 's/^/# /' >>"$RESULTS" || true
echo "[measure] done: $RESULTS" >&2
