#!/usr/bin/env bash
# Install the Debian packages the cluster tier and `make images` need, only those that are missing.
#
#   runc                         the OCI runtime containerd's runc shim drives
#   containernetworking-plugins  bridge, host-local, portmap, loopback (in /usr/lib/cni)
#   conntrack, iptables          kube-proxy's iptables mode and the egress guard
#   umoci                        packs a rootfs into an OCI image (images/)
#   debootstrap                  the images' reproducible Debian base rootfs (images/)
#   gcc, libc6-dev               the static pause binary (scripts/k8s/pause.c)
# `apt-get update` runs once, and only when something is missing. Needs root (the cluster tier runs as root anyway).
set -euo pipefail

log() { printf '[cluster-packages] %s\n' "$*" >&2; }
die() {
    printf '[cluster-packages] ERROR: %s\n' "$*" >&2
    exit 1
}

# package -> a file it installs (checked instead of dpkg's database, so a binary installed otherwise also counts).
declare -A PROBE=(
    [runc]=/usr/sbin/runc
    [containernetworking-plugins]=/usr/lib/cni/bridge
    [conntrack]=/usr/sbin/conntrack
    [iptables]=/usr/sbin/iptables
    [umoci]=/usr/bin/umoci
    [debootstrap]=/usr/sbin/debootstrap
    [gcc]=/usr/bin/gcc
    [libc6-dev]=/usr/lib/x86_64-linux-gnu/libc.a
)
missing=()
for p in runc containernetworking-plugins conntrack iptables umoci debootstrap gcc libc6-dev; do
    [[ -e "${PROBE[$p]}" ]] || missing+=("$p")
done
if [[ ${#missing[@]} -eq 0 ]]; then
    log "all present"
    exit 0
fi
[[ "$(id -u)" -eq 0 ]] || die "missing Debian packages ${missing[*]}; run as root: apt-get install -y ${missing[*]}"
command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and no apt-get here; install them with your package manager"
log "installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2 || die "apt-get update failed"
apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 || die "apt-get install ${missing[*]} failed"
for p in "${missing[@]}"; do [[ -e "${PROBE[$p]}" ]] || die "$p installed but ${PROBE[$p]} is still missing"; done
log "installed ${missing[*]}"
