#!/usr/bin/env bash
# Builds what a device installs, from a checkout (docs/contract.md, "Installing it"):
#   dist/rolemesh_VERSION_ARCH.deb            apt install ./dist/rolemesh_*.deb
#   dist/rolemesh-VERSION-linux-ARCH.tar.gz   one folder: the binary, man page, completions, README, LICENSE
# The binary has the Swift runtime linked in (--static-swift-stdlib): a device needs no Swift
# toolchain, only libsodium (and the C and C++ runtimes every Debian and Ubuntu system has).
# VERSION comes from the file VERSION, which `rolemesh --version` prints too.
#
# Cost: a release build of its own in .build/package (about 3 minutes on 2 cores the first time,
# seconds when nothing changed). `scripts/package.sh --print-deb` prints the .deb's path only.
set -euo pipefail
cd "$(dirname "$0")/.."
print_deb=0
[ "${1:-}" = "--print-deb" ] && print_deb=1
log() { if [ "$print_deb" = 0 ]; then echo "$@"; else echo "$@" >&2; fi; }
scripts/setup.sh >&2
for tool in dpkg-deb gzip tar strip; do
    command -v "$tool" >/dev/null || { echo "package.sh: $tool is missing (Debian: dpkg, gzip, tar, binutils)" >&2; exit 1; }
done

VERSION=$(tr -d ' \n\r\t' < VERSION)
ARCH=$(dpkg --print-architecture)

log "==> building rolemesh $VERSION with the Swift runtime linked in (.build/package)"
swift build -c release --product rolemesh --static-swift-stdlib --scratch-path .build/package >&2
BUILT=.build/package/release/rolemesh
got=$("$BUILT" --version)
[ "$got" = "$VERSION" ] || { echo "package.sh: the binary says $got, VERSION says $VERSION" >&2; exit 1; }
if ldd "$BUILT" | grep -q libswiftCore; then echo "package.sh: the binary still links the Swift runtime dynamically" >&2; exit 1; fi

STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
BIN="$STAGE/rolemesh"
# Debug information is not needed to run it (function names stay, for crash backtraces).
strip --strip-debug -o "$BIN" "$BUILT"
for shell in bash zsh fish; do
    "$BIN" --generate-completion-script "$shell" > "$STAGE/completion.$shell"
done
mkdir -p dist

# --- the .deb -------------------------------------------------------------------------------
ROOT="$STAGE/deb"
install -d "$ROOT/DEBIAN" "$ROOT/usr/bin" "$ROOT/usr/share/man/man1" "$ROOT/usr/share/doc/rolemesh" \
    "$ROOT/usr/share/bash-completion/completions" "$ROOT/usr/share/zsh/vendor-completions" \
    "$ROOT/usr/share/fish/vendor_completions.d"
install -m 755 "$BIN" "$ROOT/usr/bin/rolemesh"
gzip -9n < docs/rolemesh.1 > "$ROOT/usr/share/man/man1/rolemesh.1.gz"
install -m 644 "$STAGE/completion.bash" "$ROOT/usr/share/bash-completion/completions/rolemesh"
install -m 644 "$STAGE/completion.zsh" "$ROOT/usr/share/zsh/vendor-completions/_rolemesh"
install -m 644 "$STAGE/completion.fish" "$ROOT/usr/share/fish/vendor_completions.d/rolemesh.fish"
install -m 644 README.md "$ROOT/usr/share/doc/rolemesh/README.md"
install -m 644 LICENSE "$ROOT/usr/share/doc/rolemesh/copyright"
gzip -9n < CHANGELOG.md > "$ROOT/usr/share/doc/rolemesh/changelog.gz"

# Dependencies as dpkg-shlibdeps computes them from the binary (dpkg-dev); without it, the same
# list written by hand (what it computed on Debian 12 for 0.2.0).
DEPENDS="libc6 (>= 2.35), libgcc-s1 (>= 3.3), libsodium23 (>= 1.0.12), libstdc++6 (>= 11)"
if command -v dpkg-shlibdeps >/dev/null; then
    SHL="$STAGE/shlibs"
    mkdir -p "$SHL/debian"
    printf 'Source: rolemesh\n\nPackage: rolemesh\nArchitecture: any\n' > "$SHL/debian/control"
    cp "$BIN" "$SHL/rolemesh"
    computed=$(cd "$SHL" && dpkg-shlibdeps -O rolemesh 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
    [ -n "$computed" ] && DEPENDS=$computed
fi
case "$DEPENDS" in *libsodium23*) ;; *) echo "package.sh: no libsodium23 in Depends: $DEPENDS" >&2; exit 1 ;; esac

SIZE=$(du -sk "$ROOT/usr" | cut -f1)
cat > "$ROOT/DEBIAN/control" <<EOF
Package: rolemesh
Version: $VERSION
Architecture: $ARCH
Maintainer: the RoleMesh project <rolemesh@localhost>
Installed-Size: $SIZE
Depends: $DEPENDS
Section: net
Priority: optional
Description: peer-to-peer agent for a personal compute mesh
 Each of your devices runs rolemesh agent. The agents gossip signed, encrypted
 heartbeats with their roles and resource signals, every node builds the same
 view with no central server, and a task submitted for a role runs on the
 healthiest device holding it, failing over to backups.
 .
 After installing: rolemesh init NAME (or rolemesh join CODE), then
 rolemesh service install, which runs the agent under systemd.
EOF
install -m 755 packaging/debian/postinst "$ROOT/DEBIAN/postinst"
install -m 755 packaging/debian/prerm "$ROOT/DEBIAN/prerm"
(cd "$ROOT" && find usr -type f -print0 | sort -z | xargs -0 md5sum) > "$ROOT/DEBIAN/md5sums"
DEB="dist/rolemesh_${VERSION}_${ARCH}.deb"
dpkg-deb --root-owner-group -Zxz --build "$ROOT" "$DEB" >/dev/null

# --- the tarball ----------------------------------------------------------------------------
NAME="rolemesh-$VERSION-linux-$ARCH"
T="$STAGE/tar/$NAME"
install -d "$T/completions"
install -m 755 "$BIN" "$T/rolemesh"
install -m 644 docs/rolemesh.1 "$T/rolemesh.1"
install -m 644 "$STAGE/completion.bash" "$T/completions/rolemesh.bash"
install -m 644 "$STAGE/completion.zsh" "$T/completions/_rolemesh"
install -m 644 "$STAGE/completion.fish" "$T/completions/rolemesh.fish"
install -m 644 README.md LICENSE CHANGELOG.md "$T/"
TGZ="dist/$NAME.tar.gz"
tar -C "$STAGE/tar" --owner=0 --group=0 --sort=name -czf "$TGZ" "$NAME"

if [ "$print_deb" = 1 ]; then echo "$PWD/$DEB"; else
    echo "wrote $DEB ($(du -h "$DEB" | cut -f1); Depends: $DEPENDS)"
    echo "wrote $TGZ ($(du -h "$TGZ" | cut -f1))"
fi
