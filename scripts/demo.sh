#!/usr/bin/env bash
# A local mesh of four devices on 127.0.0.2-5: membership, a crash noticed by everyone, a role
# failing over to its backup and back, and a task submitted from the laptop that runs on the home
# server, then on its backup. Stops by itself; every agent it started is ended by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
echo "==> building (release)"
swift build -c release --product rolemesh 2>&1 | tail -1
BIN="$PWD/.build/release/rolemesh"
DEMO=$(mktemp -d /tmp/rolemesh-demo.XXXXXX)
PORT=${ROLEMESH_DEMO_PORT:-17946}
declare -A PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    [ -n "${WATCH:-}" ] && kill "$WATCH" 2>/dev/null || true
    rm -rf "$DEMO"
}
trap cleanup EXIT
rm_() { "$BIN" "$@"; }
say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
deadline() { local limit=$1; shift; for _ in $(seq 1 $((limit * 10))); do "$@" && return 0; sleep 0.1; done; echo "timed out waiting: $*" >&2; return 1; }

# desk, homeserver (holds "transcode"), pi (backup 1 for it), laptop (holds nothing).
declare -A HOST=([desk]=127.0.0.2 [homeserver]=127.0.0.3 [pi]=127.0.0.4 [laptop]=127.0.0.5)
declare -A EXTRA=([desk]="" [homeserver]="--role transcode" [pi]="--backup transcode=1" [laptop]="")
NODES="desk homeserver pi laptop"
say "rolemesh init: a directory, node.toml and a key pair per device"
for n in $NODES; do
    rm_ init "$n" --dir "$DEMO/$n" --listen "${HOST[$n]}:$PORT" --seed "127.0.0.2:$PORT" --profile fast ${EXTRA[$n]} >/dev/null
done
cat "$DEMO/homeserver/node.toml"
say "trust: every device gets every other device's keys/NAME.pub"
for a in $NODES; do for b in $NODES; do [ "$a" = "$b" ] || cp "$DEMO/$b/keys/$b.pub" "$DEMO/$a/keys/"; done; done
ls "$DEMO/laptop/keys"
for n in homeserver pi; do
    mkdir -p "$DEMO/$n/roles/transcode"
    cat > "$DEMO/$n/roles/transcode/encode" <<'TASK'
#!/bin/sh
echo "encoding $1 on $ROLEMESH_NODE (asked by $ROLEMESH_FROM)"
TASK
    chmod +x "$DEMO/$n/roles/transcode/encode"
done

say "starting four agents (logs in $DEMO/NAME.log)"
start() { "$BIN" agent --dir "$DEMO/$1" 2>"$DEMO/$1.log" & PIDS[$1]=$!; }
for n in $NODES; do start "$n"; done
all_alive() { [ "$(rm_ status --json --dir "$DEMO/$1" 2>/dev/null | grep -oE '"state": ?"alive"' | wc -l)" -eq "$2" ]; }
deadline 20 all_alive laptop 4
rm_ status --dir "$DEMO/laptop"

say "where would transcode work go, and why?"
rm_ route transcode --dir "$DEMO/laptop"
"$BIN" watch --dir "$DEMO/laptop" > "$DEMO/watch.txt" & WATCH=$!

say "the laptop submits a task: it runs on the home server"
rm_ submit transcode/encode --dir "$DEMO/laptop" -- talk.wav </dev/null

say "the home server crashes (SIGKILL)"
kill -9 "${PIDS[homeserver]}"; wait "${PIDS[homeserver]}" 2>/dev/null || true; unset 'PIDS[homeserver]'
is_dead() { [ "$(rm_ status --dir "$DEMO/$1" | awk '$1 == "homeserver" { print $3 }')" = dead ]; }
start_ms=$(date +%s%3N)
deadline 10 is_dead laptop && deadline 10 is_dead desk && deadline 10 is_dead pi
echo "every survivor saw homeserver dead after $(( $(date +%s%3N) - start_ms )) ms"
rm_ status --dir "$DEMO/laptop"
rm_ route transcode --dir "$DEMO/laptop"

say "the same task again: it fails over to the backup, the pi"
rm_ submit transcode/encode --dir "$DEMO/laptop" -- talk.wav </dev/null

say "the home server comes back: the role moves back"
start homeserver
routes_to() { rm_ route transcode --json --dir "$DEMO/laptop" 2>/dev/null | grep -qE "\"heavy\": ?false, ?\"node\": ?\"$1\""; }
deadline 10 routes_to homeserver
rm_ route transcode --dir "$DEMO/laptop"
rm_ submit transcode/encode --dir "$DEMO/laptop" -- talk2.wav </dev/null
sleep 0.3
say "what the laptop's 'rolemesh watch' saw"
cat "$DEMO/watch.txt"
say "the laptop's task journal"
rm_ tasks --dir "$DEMO/laptop"

kill "$WATCH" 2>/dev/null; wait "$WATCH" 2>/dev/null || true; WATCH=""
say "everyone leaves gracefully"
for n in desk pi laptop homeserver; do rm_ leave --dir "$DEMO/$n"; unset "PIDS[$n]"; done
echo "done: the mesh stopped cleanly"
