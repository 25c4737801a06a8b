#!/usr/bin/env bash
# Build the Gateway API mesh suite's echo image from source, as an OCI archive for containerd.
#
# conformance/mesh/manifests.yaml (sigs.k8s.io/gateway-api/conformance v1.6.1) runs
# `registry.k8s.io/gateway-api/echo-advanced:v1.5.1` (imagePullPolicy IfNotPresent) with
# `--tcp=9090 --port=8080 --grpc=7070 --port=8443 --tls=8443 --crt=/cert.crt --key=/cert.key`, and the suite execs
# `client <url>` inside those pods. That image is Istio's echo app (gateway-api's docker/Dockerfile.echo-advanced
# is `FROM gcr.io/istio-release/app:1.21.2`): the programs istio.io/istio/pkg/test/echo/cmd/server and
# .../cmd/client. This script builds both from the Go module proxy (CGO off, static), adds a throwaway
# self-signed certificate at /cert.crt and /cert.key, and packs one layer with umoci under the name the manifests
# use. Importing it is the cluster tier's job: `ctr -n k8s.io images import <archive>` on the test cluster.
#
# Istio publishes no semver Go module versions; the Go module proxy serves istio.io/istio at pseudo-versions
# only (v0.0.0-20260827124520-eed52ebb66ad, master of 2026-08-27, is the newest it lists). The echo programs'
# command line and their `Key=value` output, which the suite parses (conformance/utils/echo/parse.go), have been
# stable across Istio releases; this is not byte-identical to the 1.21.2 image upstream publishes. (Older
# pseudo-versions of release-1.21, e.g. v0.0.0-20241002011629-79aa08a0f8ee, are refused by the proxy with 403.)
# Measured on the shared 2-core machine: 6 min 50 s cold (module downloads included), then reused from the cache.
#
# Output: ${MESHWORK_GATEWAY_API_CACHE:-~/.cache/meshwork/gateway-api}/echo/<istio version>/echo-advanced.oci.tar
# (reused when present). Go builds run at nice ${MESHWORK_BUILD_NICE:-10}, one at a time (flock).
# Prints the archive's path as its last line on stdout.
set -euo pipefail

ISTIO_VERSION="${MESHWORK_ECHO_ISTIO_VERSION:-v0.0.0-20260827124520-eed52ebb66ad}"
IMAGE="${MESHWORK_ECHO_IMAGE:-registry.k8s.io/gateway-api/echo-advanced:v1.5.1}"
CACHE_ROOT="${MESHWORK_GATEWAY_API_CACHE:-$HOME/.cache/meshwork/gateway-api}"
NICE="${MESHWORK_BUILD_NICE:-10}"
OUT="$CACHE_ROOT/echo/$ISTIO_VERSION"
ARCHIVE="$OUT/echo-advanced.oci.tar"

log() { printf '[echo-image] %s\n' "$*" >&2; }
die() {
    printf '[echo-image] ERROR: %s\n' "$*" >&2
    exit 1
}

mkdir -p "$OUT"
exec 9>"$OUT/.lock"
flock 9
if [[ -s "$ARCHIVE" ]]; then
    echo "$ARCHIVE"
    exit 0
fi
for tool in go umoci openssl tar; do
    command -v "$tool" >/dev/null 2>&1 || die "'$tool' missing (umoci: scripts/k8s/install-cluster-packages.sh)"
done

work="$(mktemp -d "$OUT/.build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
mod="$work/mod"
mkdir -p "$mod" "$work/rootfs/usr/local/bin"
cat >"$mod/go.mod" <<GOMOD
module meshwork.io/echo-build

go 1.26

require istio.io/istio $ISTIO_VERSION
GOMOD
cat >"$mod/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "istio.io/istio/pkg/test/echo/cmd/client"
	_ "istio.io/istio/pkg/test/echo/cmd/server"
)
GO
log "building Istio's echo server and client (istio.io/istio@$ISTIO_VERSION) at nice $NICE"
start=$SECONDS
(
    cd "$mod"
    GOFLAGS=-mod=mod nice -n "$NICE" go mod tidy >&2
    # One `go build` of both programs: their shared packages compile once and the two links run in parallel.
    CGO_ENABLED=0 GOFLAGS=-mod=mod nice -n "$NICE" go build -trimpath -gcflags=all=-dwarf=false -ldflags="-s -w" \
        -o "$work/rootfs/usr/local/bin/" istio.io/istio/pkg/test/echo/cmd/server istio.io/istio/pkg/test/echo/cmd/client >&2
)
log "built in $((SECONDS - start))s"

openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=echo" \
    -keyout "$work/rootfs/cert.key" -out "$work/rootfs/cert.crt" >/dev/null 2>&1
chmod 0644 "$work/rootfs/cert.key" "$work/rootfs/cert.crt"

layout="$work/oci"
tag="${IMAGE##*:}"
umoci init --layout "$layout"
umoci new --image "$layout:$tag"
umoci insert --image "$layout:$tag" "$work/rootfs" /
umoci config --image "$layout:$tag" --config.entrypoint /usr/local/bin/server \
    --config.env PATH=/usr/local/bin:/usr/bin:/bin --config.user 65532
umoci gc --layout "$layout"
# containerd reads the image name from this annotation on import.
python3 - "$layout/index.json" "$IMAGE" <<'PY'
import json, sys
path, name = sys.argv[1], sys.argv[2]
index = json.load(open(path))
for m in index["manifests"]:
    m.setdefault("annotations", {})["io.containerd.image.name"] = name
json.dump(index, open(path, "w"))
PY
tar -C "$layout" -cf "$ARCHIVE.tmp" . && mv "$ARCHIVE.tmp" "$ARCHIVE"
log "$IMAGE: $ARCHIVE ($(du -h "$ARCHIVE" | cut -f1))"
echo "$ARCHIVE"
