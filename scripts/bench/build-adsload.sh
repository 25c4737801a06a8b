#!/usr/bin/env bash
# Build (or reuse) bench/adsload, the Go load generator of bench/push.py (many synthetic ADS clients).
#
# Built with the Go module proxy from bench/adsload (its go.mod and go.sum pin every module) into
# ${MESHWORK_ADSLOAD_CACHE:-$HOME/.cache/meshwork/adsload}/<hash of the sources>/adsload, never into the repository.
# Idempotent: a binary built from the same sources is reused. The build runs at nice ${MESHWORK_BUILD_NICE:-10}.
# Prints the path of the binary as its last line on stdout; progress goes to stderr.
set -euo pipefail

SRC="$(cd "$(dirname "$0")/../../bench/adsload" && pwd)"
CACHE_ROOT="${MESHWORK_ADSLOAD_CACHE:-$HOME/.cache/meshwork/adsload}"
NICE="${MESHWORK_BUILD_NICE:-10}"

log() { printf '[adsload] %s\n' "$*" >&2; }
command -v go >/dev/null 2>&1 || { log "ERROR: go is not on PATH (needed to build bench/adsload)"; exit 1; }

HASH="$(cd "$SRC" && cat go.mod go.sum ./*.go | sha256sum | cut -c1-16)"
OUT="$CACHE_ROOT/$HASH"
BIN="$OUT/adsload"
mkdir -p "$OUT"
if command -v flock >/dev/null 2>&1; then
    exec 9>"$OUT/.lock"
    flock 9
fi
if [[ -x "$BIN" ]]; then
    echo "$BIN"
    exit 0
fi
log "building from $SRC at nice $NICE"
start=$SECONDS
(cd "$SRC" && CGO_ENABLED=0 nice -n "$NICE" go build -trimpath -gcflags=all=-dwarf=false -ldflags="-s -w" -o "$BIN.tmp" .)
mv "$BIN.tmp" "$BIN"
log "built in $((SECONDS - start))s: $BIN"
echo "$BIN"
