#!/usr/bin/env bash
# Tools the capture tests (tests/envoy/test_capture_netns.py) need: `ip` (iproute2) for network namespaces and
# iptables (iptables-restore) for the capture rules. Installs them from Debian's apt when missing (root only).
set -euo pipefail
missing=()
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v iptables-restore >/dev/null 2>&1 || missing+=(iptables)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "capture tests need: ${missing[*]} (install them, as root, with your package manager)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null || {
  apt-get update -qq >/dev/null && apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null
}
