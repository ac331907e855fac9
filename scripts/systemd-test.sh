#!/usr/bin/env bash
# `rolemesh service install` under a real systemd: a Debian 12 root (debootstrap, cached in
# /var/cache/rolemesh-ci/ so a machine pays for it once, about a minute) booted by systemd-nspawn.
# The .deb from scripts/package.sh is installed there with apt, and for a user unit (an ordinary
# user with linger) and then a system unit (--system):
#   service install -> the agent is active and a second agent (on this host, sharing the
#   network) sees it alive; `systemctl stop` -> a graceful leave, seen as `left`; SIGKILL of the
#   agent -> systemd restarts it; a reboot of the container -> it is back; service uninstall ->
#   the unit is gone.
# Then the upgrade: the previous release's .deb (ROLEMESH_PREVIOUS_DEB, built by
# scripts/previous-release.sh) is installed and running with a queued task waiting, and this .deb
# is installed over it: the agent restarts as this release with a graceful leave, the observer
# never sees it dead, and the queued task runs once a node takes its role.
#
# Usage: scripts/systemd-test.sh DEB   (as root). Prints "skipped: REASON" and exits 0 where
# debootstrap, systemd-nspawn or root are missing. Every process it starts is ended by PID, and the
# container powered off (killed if it does not stop), on every exit path.
set -euo pipefail
cd "$(dirname "$0")/.."
DEB=${1:?usage: scripts/systemd-test.sh DEB}
DEB=$(readlink -f "$DEB")
skip() { echo "systemd test: skipped: $*"; exit 0; }
[ "$(id -u)" -eq 0 ] || skip "not root (systemd-nspawn needs root)"
for t in debootstrap systemd-nspawn nsenter dpkg-deb; do
    command -v "$t" >/dev/null || skip "$t is not installed (Debian: debootstrap, systemd-container, util-linux, dpkg)"
done

# --- the cached root ------------------------------------------------------------------------
PACKAGES="systemd,systemd-sysv,dbus,libpam-systemd,libsodium23,procps"
CACHE=/var/cache/rolemesh-ci
KEY=$(printf '%s' "bookworm minbase $PACKAGES" | md5sum | cut -c1-12)
BASE="$CACHE/bookworm-$KEY"
if [ ! -f "$BASE/.complete" ]; then
    echo "==> debootstrap of Debian 12 into $BASE (once per machine)"
    mkdir -p "$CACHE"
    rm -rf "$BASE.tmp"
    debootstrap --variant=minbase --include="$PACKAGES" bookworm "$BASE.tmp" >"$CACHE/debootstrap.log" 2>&1 \
        || { tail -20 "$CACHE/debootstrap.log"; echo "systemd test: debootstrap failed" >&2; exit 1; }
    rm -rf "$BASE"
    mv "$BASE.tmp" "$BASE"
    touch "$BASE/.complete"
fi

# --- this run's copy, the container, the observer -------------------------------------------
RUN=$(mktemp -d /var/tmp/rolemesh-systemd.XXXXXX)
ROOT="$RUN/root"
echo "==> copying the root to $ROOT"
cp -a --reflink=auto "$BASE" "$ROOT"
rm -f "$ROOT/.complete"
echo rmtest > "$ROOT/etc/hostname"
HOSTBIN="$RUN/host/usr/bin/rolemesh"
dpkg-deb -x "$DEB" "$RUN/host"
NSPAWN=""; OBS=""; WATCH=""
PORT=$((47000 + $$ % 500))
C_IP=127.0.0.91 O_IP=127.0.0.92

cleanup() {
    set +e
    [ -n "$WATCH" ] && kill "$WATCH" 2>/dev/null && wait "$WATCH" 2>/dev/null
    [ -n "$OBS" ] && kill "$OBS" 2>/dev/null && wait "$OBS" 2>/dev/null
    if [ -n "$NSPAWN" ] && kill -0 "$NSPAWN" 2>/dev/null; then
        pid1=$(container_pid1)
        [ -n "$pid1" ] && nsenter -t "$pid1" -a systemctl poweroff >/dev/null 2>&1
        for _ in $(seq 100); do kill -0 "$NSPAWN" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$NSPAWN" 2>/dev/null
        wait "$NSPAWN" 2>/dev/null
    fi
    rm -rf "$RUN"
}
trap cleanup EXIT

# The container's PID 1 (its PID namespace's init, systemd): nspawn's child, or that child's
# child where nspawn forks twice.
container_pid1() {
    local c g
    for c in $(cat /proc/"$NSPAWN"/task/*/children 2>/dev/null); do
        [ "$(cat /proc/"$c"/comm 2>/dev/null)" = systemd ] && { echo "$c"; return; }
        for g in $(cat /proc/"$c"/task/*/children 2>/dev/null); do
            [ "$(cat /proc/"$g"/comm 2>/dev/null)" = systemd ] && { echo "$g"; return; }
        done
    done
}

have_pid1() { [ -n "$(container_pid1)" ]; }
fail() { echo "systemd test: FAILED: $*" >&2; [ -f "$RUN/obs.log" ] && tail -20 "$RUN/obs.log" >&2; exit 1; }
# until SECONDS CMD...: polls every 0.2 s.
until_() { local limit=$1; shift; for _ in $(seq $((limit * 5))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done; return 1; }

boot() {
    systemd-nspawn -q -D "$ROOT" -b --register=no --keep-unit >"$RUN/console.log" 2>&1 &
    NSPAWN=$!
    until_ 30 have_pid1 || fail "the container did not start: $(tail -5 "$RUN/console.log")"
    P1=$(container_pid1)
    local state=""
    for _ in $(seq 150); do
        state=$(nsenter -t "$P1" -a systemctl is-system-running 2>/dev/null || true)
        case "$state" in running|degraded) break ;; esac
        sleep 0.2
    done
    case "$state" in running|degraded) ;; *) fail "systemd in the container is '$state'" ;; esac
}
inside() { nsenter -t "$P1" -a "$@"; }
as_user() { inside runuser -u alice -- env HOME=/home/alice XDG_RUNTIME_DIR=/run/user/1000 "$@"; }
reboot_() {
    inside systemctl reboot >/dev/null 2>&1 || true
    # nspawn ends with status 133 when its container asks for a reboot; it is booted again.
    for _ in $(seq 150); do kill -0 "$NSPAWN" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$NSPAWN" 2>/dev/null && fail "the container did not stop for its reboot"
    wait "$NSPAWN" || true
    NSPAWN=""
    boot
}

# Member c1 as the observer sees it: its last member-* event on the observer's `watch --json`.
seen() { grep '"node":"c1"' "$RUN/watch.log" | grep -o '"event":"member-\(alive\|suspect\|dead\|left\)"' | tail -1 | cut -d'"' -f4 | cut -d- -f2; }
seen_is() { [ "$(seen)" = "$1" ]; }
events() { grep -c "\"event\":\"$1\",\"node\":\"c1\"\|\"node\":\"c1\".*\"event\":\"$1\"" "$RUN/watch.log" || true; }

echo "==> booting the container"
boot
echo "==> apt install ./$(basename "$DEB") inside it"
cp "$DEB" "$ROOT/root/rolemesh.deb"
inside env DEBIAN_FRONTEND=noninteractive apt-get install -y -q /root/rolemesh.deb >"$RUN/apt.log" 2>&1 \
    || fail "apt install: $(tail -5 "$RUN/apt.log")"
[ "$(inside rolemesh --version)" = "$(dpkg-deb -f "$DEB" Version)" ] || fail "rolemesh --version inside"
inside test -f /usr/share/bash-completion/completions/rolemesh || fail "no bash completion"
inside test -f /usr/share/man/man1/rolemesh.1.gz || fail "no man page"

echo "==> an ordinary user with linger; rolemesh init; an observer on this host"
inside useradd -m -u 1000 -s /bin/sh alice
inside loginctl enable-linger alice
until_ 30 inside test -S /run/user/1000/systemd/private || fail "alice's user manager did not start"
as_user rolemesh init c1 --listen "$C_IP:$PORT" --seed "$O_IP:$PORT" --profile fast >/dev/null
"$HOSTBIN" init obs --dir "$RUN/obs" --listen "$O_IP:$PORT" --seed "$C_IP:$PORT" --profile fast >/dev/null
cp "$RUN/obs/keys/obs.pub" "$ROOT/home/alice/.rolemesh/keys/obs.pub"
inside chown alice:alice /home/alice/.rolemesh/keys/obs.pub
cp "$ROOT/home/alice/.rolemesh/keys/c1.pub" "$RUN/obs/keys/c1.pub"
"$HOSTBIN" agent --dir "$RUN/obs" >"$RUN/obs.log" 2>&1 &
OBS=$!
until_ 10 "$HOSTBIN" status --dir "$RUN/obs" || fail "the observer agent did not start"
"$HOSTBIN" watch --json --dir "$RUN/obs" >"$RUN/watch.log" 2>&1 &
WATCH=$!

# One pass over a unit: user ("") or system ("--system").
check_unit() {
    local mode=$1 sctl install uninstall
    if [ "$mode" = user ]; then
        sctl() { as_user systemctl --user "$@"; }
        install() { as_user rolemesh service install; }
        uninstall() { as_user rolemesh service uninstall; }
        unitfile=/home/alice/.config/systemd/user/rolemesh-c1.service
    else
        sctl() { inside systemctl "$@"; }
        install() { inside rolemesh service install --system --dir /home/alice/.rolemesh; }
        uninstall() { inside rolemesh service uninstall --dir /home/alice/.rolemesh; }
        unitfile=/etc/systemd/system/rolemesh-c1.service
    fi
    echo "==> [$mode] service install"
    install >/dev/null || fail "[$mode] service install"
    until_ 10 sctl is-active rolemesh-c1.service || fail "[$mode] the unit is not active"
    until_ 20 seen_is alive || fail "[$mode] the observer does not see c1 alive (it sees '$(seen)')"
    [ "$mode" = system ] && { [ "$(inside ps -o user= -p "$(sctl show -p MainPID --value rolemesh-c1.service)")" = alice ] || fail "[system] the agent does not run as alice"; }

    echo "==> [$mode] systemctl stop: a graceful leave"
    local left_before
    left_before=$(events member-left)
    sctl stop rolemesh-c1.service
    until_ 10 seen_is left || fail "[$mode] after stop the observer sees '$(seen)', not left"
    [ "$(events member-left)" -gt "$left_before" ] || fail "[$mode] no member-left event"
    sctl start rolemesh-c1.service
    until_ 20 seen_is alive || fail "[$mode] not alive again after start"

    echo "==> [$mode] SIGKILL of the agent: systemd restarts it"
    local pid new
    pid=$(sctl show -p MainPID --value rolemesh-c1.service)
    [ "$pid" -gt 0 ] || fail "[$mode] no main PID"
    inside kill -9 "$pid"
    until_ 20 sh -c "p=\$(nsenter -t $P1 -a $( [ "$mode" = user ] && echo "runuser -u alice -- env XDG_RUNTIME_DIR=/run/user/1000 systemctl --user" || echo systemctl ) show -p MainPID --value rolemesh-c1.service); [ \"\$p\" -gt 0 ] && [ \"\$p\" != $pid ]" \
        || fail "[$mode] systemd did not restart the agent after SIGKILL"
    until_ 10 sctl is-active rolemesh-c1.service || fail "[$mode] not active after the restart"
    until_ 20 seen_is alive || fail "[$mode] not alive after the restart (observer sees '$(seen)')"

    echo "==> [$mode] reboot of the container: the agent is back"
    left_before=$(events member-left)
    reboot_
    until_ 30 sctl is-active rolemesh-c1.service || fail "[$mode] not active after the reboot"
    until_ 30 seen_is alive || fail "[$mode] not alive after the reboot (observer sees '$(seen)')"
    [ "$(events member-left)" -gt "$left_before" ] || fail "[$mode] the shutdown for the reboot was not a graceful leave"

    echo "==> [$mode] service uninstall"
    uninstall >/dev/null || fail "[$mode] service uninstall"
    inside test ! -e "$unitfile" || fail "[$mode] $unitfile is still there"
    sctl is-active rolemesh-c1.service >/dev/null 2>&1 && fail "[$mode] still active after uninstall"
    until_ 10 seen_is left || fail "[$mode] after uninstall the observer sees '$(seen)', not left"
    echo "==> [$mode] ok"
}

# The upgrade: the previous release's agent runs, a task waits in its queue; this .deb goes over it.
check_upgrade() {
    local prev=$1 id old_pid new_pid left_before dead_before
    echo "==> [upgrade] the previous release ($(dpkg-deb -f "$prev" Version)) installed, its agent a user unit"
    cp "$prev" "$ROOT/root/previous.deb"
    inside env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --allow-downgrades /root/previous.deb >"$RUN/apt.log" 2>&1 \
        || fail "[upgrade] apt install of the previous release: $(tail -5 "$RUN/apt.log")"
    [ "$(inside rolemesh --version)" = "$(dpkg-deb -f "$prev" Version)" ] || fail "[upgrade] the previous release is not installed"
    as_user rolemesh service install >/dev/null || fail "[upgrade] service install with the previous release"
    until_ 10 as_user systemctl --user is-active rolemesh-c1.service || fail "[upgrade] the previous release's unit is not active"
    until_ 20 seen_is alive || fail "[upgrade] the observer does not see the previous release's agent alive"
    # No node holds role "later" yet: the task waits in c1's queue, on disk.
    id=$(as_user rolemesh submit --queue --detach later/mark) || fail "[upgrade] submit --queue"
    as_user rolemesh tasks --json | grep -q '"state":"queued"' || fail "[upgrade] the task is not queued"
    old_pid=$(as_user systemctl --user show -p MainPID --value rolemesh-c1.service)
    left_before=$(events member-left); dead_before=$(events member-dead)

    echo "==> [upgrade] apt install of this release over the running agent"
    inside env DEBIAN_FRONTEND=noninteractive apt-get install -y -q /root/rolemesh.deb >"$RUN/apt.log" 2>&1 \
        || fail "[upgrade] apt install over the previous release: $(tail -5 "$RUN/apt.log")"
    [ "$(inside rolemesh --version)" = "$(dpkg-deb -f "$DEB" Version)" ] || fail "[upgrade] this release is not installed"
    new_pid=$(as_user systemctl --user show -p MainPID --value rolemesh-c1.service)
    [ "$new_pid" -gt 0 ] && [ "$new_pid" != "$old_pid" ] || fail "[upgrade] the agent was not restarted ($old_pid, now $new_pid)"
    until_ 20 seen_is alive || fail "[upgrade] not alive after the upgrade (observer sees '$(seen)')"
    [ "$(events member-left)" -gt "$left_before" ] || fail "[upgrade] the restart was not a graceful leave"
    [ "$(events member-dead)" = "$dead_before" ] || fail "[upgrade] the observer declared the agent dead"

    echo "==> [upgrade] the queued task runs once a node takes its role"
    mkdir -p "$RUN/obs/roles/later"
    printf '#!/bin/sh\ntouch "%s/ran.$ROLEMESH_TASK_ID"\n' "$RUN" > "$RUN/obs/roles/later/mark"
    chmod 755 "$RUN/obs/roles/later/mark"
    "$HOSTBIN" roles add later --dir "$RUN/obs" >/dev/null
    until_ 30 test -f "$RUN/ran.$id" || fail "[upgrade] the task queued before the upgrade did not run"
    as_user rolemesh service uninstall >/dev/null || fail "[upgrade] service uninstall"
    echo "==> [upgrade] ok"
}

check_unit user
check_unit system
if [ -n "${ROLEMESH_PREVIOUS_DEB:-}" ]; then check_upgrade "$ROLEMESH_PREVIOUS_DEB"; else
    echo "systemd test: the upgrade part skipped: ROLEMESH_PREVIOUS_DEB is not set (scripts/previous-release.sh)"
fi

echo "systemd test: passed"
