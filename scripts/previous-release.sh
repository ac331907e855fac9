#!/usr/bin/env bash
# Builds the previous release (git tag v0.1.0) for the mixed-version and upgrade tests, cached in
# /var/cache/rolemesh-ci/ (or $ROLEMESH_CI_CACHE) by commit, so a machine builds it once (about
# 3 minutes on 2 cores; seconds after). Prints two lines: the binary, then a .deb of it (what
# 0.1.0 would have shipped: the binary alone, no maintainer scripts). Exits 2 with one sentence
# on stderr when the tag is not in this clone (a shallow clone: `git fetch --tags`).
set -euo pipefail
cd "$(dirname "$0")/.."
TAG=${ROLEMESH_PREVIOUS_TAG:-v0.1.0}
commit=$(git rev-parse -q --verify "$TAG^{commit}" 2>/dev/null) || {
    echo "previous-release.sh: the tag $TAG is not in this clone (git fetch --tags)" >&2; exit 2; }
CACHE=${ROLEMESH_CI_CACHE:-/var/cache/rolemesh-ci}/previous-$TAG-${commit:0:12}
BIN="$CACHE/rolemesh"
ARCH=$(dpkg --print-architecture)
VERSION=${TAG#v}
DEB="$CACHE/rolemesh_${VERSION}_${ARCH}.deb"
if [ ! -x "$BIN" ] || [ ! -f "$DEB" ]; then
    mkdir -p "$CACHE"
    rm -rf "$CACHE/src"
    mkdir -p "$CACHE/src"
    git archive "$commit" | tar -x -C "$CACHE/src"
    echo "==> building $TAG ($commit) with the Swift runtime linked in, in $CACHE" >&2
    (cd "$CACHE/src" && swift build -c release --product rolemesh --static-swift-stdlib --scratch-path "$CACHE/build" >&2)
    strip --strip-debug -o "$BIN.tmp" "$CACHE/build/release/rolemesh"
    mv "$BIN.tmp" "$BIN"
    ROOT=$(mktemp -d)
    install -d "$ROOT/DEBIAN" "$ROOT/usr/bin"
    install -m 755 "$BIN" "$ROOT/usr/bin/rolemesh"
    printf 'Package: rolemesh\nVersion: %s\nArchitecture: %s\nMaintainer: the RoleMesh project <rolemesh@localhost>\nDepends: libc6 (>= 2.35), libgcc-s1, libsodium23, libstdc++6\nDescription: peer-to-peer agent for a personal compute mesh (%s, for tests)\n' \
        "$VERSION" "$ARCH" "$TAG" > "$ROOT/DEBIAN/control"
    dpkg-deb --root-owner-group --build "$ROOT" "$DEB" >/dev/null
    rm -rf "$ROOT" "$CACHE/src"
fi
echo "$BIN"
echo "$DEB"
