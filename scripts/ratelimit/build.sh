#!/usr/bin/env bash
# Build (or reuse) the global rate-limit tier's parts: the upstream envoyproxy/ratelimit service (Go, from the
# module proxy) and Redis (Debian's redis-server, installed with apt-get when missing and we are root).
#
# The binary goes to ${MESHWORK_RATELIMIT_CACHE:-$HOME/.cache/meshwork/ratelimit}/<version>/ratelimit, never into
# the repository. Idempotent: an existing binary is reused. A cold build took ~6 min here (mostly module
# downloads; ~1.5 min of CPU) and gives a 35 MB binary.
#
# Environment:
#   MESHWORK_RATELIMIT_VERSION  module version (default: the pinned pseudo-version below)
#   MESHWORK_RATELIMIT_CACHE    cache root
#   MESHWORK_BUILD_NICE         nice level of the go build (default 10)
# Prints the binary's path as its last line on stdout; progress goes to stderr.
set -euo pipefail

VERSION="${MESHWORK_RATELIMIT_VERSION:-v1.4.1-0.20260122083618-3fb702589d36}"
CACHE_ROOT="${MESHWORK_RATELIMIT_CACHE:-$HOME/.cache/meshwork/ratelimit}"
NICE="${MESHWORK_BUILD_NICE:-10}"
OUT="$CACHE_ROOT/$VERSION"

log() { printf '[ratelimit] %s\n' "$*" >&2; }
die() {
    printf '[ratelimit] ERROR: %s\n' "$*" >&2
    exit 1
}

if ! command -v redis-server >/dev/null 2>&1; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        log "installing redis-server (Debian package)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server >&2 || die "apt-get install redis-server failed"
        # The package starts a system Redis on 6379; the tests start their own on a free port.
        systemctl disable --now redis-server >/dev/null 2>&1 || true
    else
        die "redis-server is missing: apt-get install redis-server"
    fi
fi

mkdir -p "$OUT"
if command -v flock >/dev/null 2>&1; then
    exec 9>"$OUT/.lock"
    flock 9
fi
if [[ -x "$OUT/ratelimit" ]]; then
    echo "$OUT/ratelimit"
    exit 0
fi
command -v go >/dev/null 2>&1 || die "go is needed to build github.com/envoyproxy/ratelimit"
work="$(mktemp -d "$OUT/.build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
log "building github.com/envoyproxy/ratelimit@$VERSION at nice $NICE (a cold build took ~6 min here)"
start=$SECONDS
GOBIN="$work" CGO_ENABLED=0 nice -n "$NICE" go install -trimpath -gcflags=all=-dwarf=false -ldflags="-s -w" "github.com/envoyproxy/ratelimit/src/service_cmd@$VERSION" >&2
mv "$work/service_cmd" "$OUT/ratelimit"
log "built in $((SECONDS - start))s"
echo "$OUT/ratelimit"
