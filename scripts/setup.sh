#!/usr/bin/env bash
# Installs what building RoleMesh needs on Debian/Ubuntu: libsodium (and pkg-config to find it);
# and, as root, what the network-namespace tests need (ip, iptables): without them those tests
# are skipped, which on CI would hide the travel and relay bugs they exist for.
set -euo pipefail
missing=()
pkg-config --exists libsodium 2>/dev/null || missing+=(libsodium-dev pkg-config)
if [ "$(id -u)" -eq 0 ]; then
    command -v ip >/dev/null || missing+=(iproute2)
    command -v iptables >/dev/null || missing+=(iptables)
fi
if [ "${#missing[@]}" -gt 0 ]; then
    echo "==> installing ${missing[*]} (apt-get)"
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
