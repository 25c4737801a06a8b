#!/usr/bin/env bash
# Build (or reuse) fortio, Istio's load-testing tool, for bench/dataplane.py.
#
# Built from the Go module proxy (`go install fortio.org/fortio@VERSION`) into
# ${MESHWORK_FORTIO_CACHE:-$HOME/.cache/meshwork/fortio}/<version>/, never into the repository. Idempotent: a
# cached binary answering `version` with the expected version is reused. The build runs at nice 10.
#
# Environment:
#   MESHWORK_FORTIO_VERSION  fortio version (default v1.68.2: from v1.69 on fortio requires grol.io/grol, which
#                            the Go module proxy refuses here with 403 Forbidden)
#   MESHWORK_FORTIO_CACHE    cache root (default ~/.cache/meshwork/fortio)
#   MESHWORK_BUILD_NICE      nice level of the go build (default 10)
# Prints the path of the binary as its last line on stdout; progress goes to stderr.
set -euo pipefail

VERSION="${MESHWORK_FORTIO_VERSION:-v1.68.2}"
CACHE_ROOT="${MESHWORK_FORTIO_CACHE:-$HOME/.cache/meshwork/fortio}"
NICE="${MESHWORK_BUILD_NICE:-10}"
OUT="$CACHE_ROOT/$VERSION"
BIN="$OUT/fortio"

log() { printf '[fortio] %s\n' "$*" >&2; }

[[ "$VERSION" =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]] || { log "ERROR: MESHWORK_FORTIO_VERSION must look like v1.68.2"; exit 1; }
command -v go >/dev/null 2>&1 || { log "ERROR: go is not on PATH (needed to build fortio from the Go module proxy)"; exit 1; }

mkdir -p "$OUT"
if command -v flock >/dev/null 2>&1; then
    exec 9>"$OUT/.lock"
    flock 9
fi

if [[ -x "$BIN" ]] && "$BIN" version 2>/dev/null | grep -q "${VERSION#v}"; then
    echo "$BIN"
    exit 0
fi

log "building fortio $VERSION from the Go module proxy at nice $NICE"
start=$SECONDS
GOBIN="$OUT" CGO_ENABLED=0 nice -n "$NICE" go install -trimpath -gcflags=all=-dwarf=false -ldflags="-s -w" "fortio.org/fortio@$VERSION"
"$BIN" version >/dev/null
log "built in $((SECONDS - start))s: $BIN"
echo "$BIN"
