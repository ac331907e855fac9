#!/usr/bin/env bash
# Installs what building RoleMesh needs on Debian/Ubuntu: libsodium (and pkg-config to find it).
set -euo pipefail
if ! pkg-config --exists libsodium 2>/dev/null; then
    echo "==> installing libsodium-dev (apt-get)"
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libsodium-dev pkg-config >/dev/null
fi
