#!/usr/bin/env bash
# A local mesh of four devices on 127.0.0.2-5, three of them added with invite/join by two introducers (desk, the first
# device, names homeserver one): membership, a crash noticed by everyone, a role
# failing over to its backup and back, a task submitted from the laptop that runs on the home
# server, then on its backup, and a nightly job that waits for idle time, runs, is paused when the
# "user returns" and resumed; a service the laptop reaches at localhost, which moves to the pi when
# the home server is cut off, and back. Stops by itself; every process it started is ended by PID.
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
start() { "$BIN" agent --dir "$DEMO/$1" 2>"$DEMO/$1.log" & PIDS[$1]=$!; }
# `invite NAME` on $2, `join` on NAME (which asks for its roles: they are granted), NAME's agent starts.
admit() {
    local n=$1 by=$2 code
    code=$(rm_ invite "$n" --dir "$DEMO/$by" 2>/dev/null)
    echo "\$ rolemesh invite $n      # on $by"
    echo "$code"
    echo "\$ rolemesh join rm1-... --listen ${HOST[$n]}:$PORT ${EXTRA[$n]}"
    # Captured whole, then its first line shown: `| head -1` under pipefail fails whenever head
    # closes the pipe before join has written everything.
    local out
    out=$(rm_ join "$code" --dir "$DEMO/$n" --listen "${HOST[$n]}:$PORT" --profile fast ${EXTRA[$n]})
    echo "${out%%$'\n'*}"
    start "$n"
}
say "rolemesh init: the first device, desk (a directory, node.toml, a key pair and the mesh's recovery code); its agent starts"
rm_ init desk --dir "$DEMO/desk" --listen "${HOST[desk]}:$PORT" --profile fast 2>/dev/null | grep -A1 "recovery code"
start desk
deadline 10 rm_ status --dir "$DEMO/desk" >/dev/null 2>&1
say "adding devices: 'rolemesh invite NAME' on an introducer, 'rolemesh join CODE' on the new device (no key copied by hand)"
admit homeserver desk
deadline 10 rm_ status --dir "$DEMO/homeserver" >/dev/null 2>&1
say "desk is the only introducer: it names a second one, so losing one device is not losing control"
echo "\$ rolemesh introducers add homeserver      # on desk"
rm_ introducers add homeserver --dir "$DEMO/desk"
has_introducer() { grep -q '"homeserver"' "$DEMO/$1/node.toml"; }
# Output is captured before it is searched: `cmd | grep -q` under pipefail fails when grep stops
# reading at its first match while cmd still writes.
has() { local out; out=$("${@:2}" 2>/dev/null) && grep -qE "$1" <<<"$out"; }
is_introducer() { has "\"introducer\": ?true, ?\"name\": ?\"$1\"" rm_ trust --json --dir "$DEMO/$1"; }
deadline 15 is_introducer homeserver
admit pi homeserver
admit laptop desk
cat "$DEMO/pi/node.toml"
for n in homeserver pi; do
    mkdir -p "$DEMO/$n/roles/transcode"
    cat > "$DEMO/$n/roles/transcode/encode" <<'TASK'
#!/bin/sh
echo "encoding $1 on $ROLEMESH_NODE (asked by $ROLEMESH_FROM)"
TASK
    chmod +x "$DEMO/$n/roles/transcode/encode"
done

say "the new agents run (logs in $DEMO/NAME.log)"
all_alive() { [ "$(rm_ status --json --dir "$DEMO/$1" 2>/dev/null | grep -oE '"state": ?"alive"' | wc -l)" -eq "$2" ]; }
deadline 20 all_alive laptop 4
rm_ status --dir "$DEMO/laptop"
say "each introducer introduced its devices to the others: the audit on the laptop (no file copied by hand)"
has_keys() { [ "$(ls "$DEMO/laptop/keys/"*.pub | wc -l)" -eq 4 ]; }
deadline 10 has_keys
deadline 10 has_introducer laptop
rm_ trust --dir "$DEMO/laptop"
say "the laptop is no introducer: it cannot admit or shut out anyone (exit 77)"
rm_ invite tablet --dir "$DEMO/laptop" || echo "(exit $?)"

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
routes_to() { has "\"heavy\": ?false, ?\"node\": ?\"$1\"" rm_ route transcode --json --dir "$DEMO/laptop"; }
deadline 10 routes_to homeserver
rm_ route transcode --dir "$DEMO/laptop"
rm_ submit transcode/encode --dir "$DEMO/laptop" -- talk2.wav </dev/null
sleep 0.3
say "what the laptop's 'rolemesh watch' saw"
cat "$DEMO/watch.txt"
say "the laptop's task journal"
rm_ tasks --dir "$DEMO/laptop"

kill "$WATCH" 2>/dev/null; wait "$WATCH" 2>/dev/null || true; WATCH=""

say "a service: the home server and the pi serve transcode/web (roles/transcode/service.toml); a web server runs on each (systemd would run it)"
declare -A WEB=([homeserver]=$((PORT + 100)) [pi]=$((PORT + 101)))
LOCAL=$((PORT + 200))
for n in homeserver pi; do
    mkdir -p "$DEMO/$n/www"
    echo "transcode/web, served by $n" > "$DEMO/$n/www/index.html"
    python3 -m http.server "${WEB[$n]}" --bind 127.0.0.1 --directory "$DEMO/$n/www" >/dev/null 2>&1 & PIDS[web-$n]=$!
    disown "${PIDS[web-$n]}"      # ended by PID at the end, without bash's "Killed" line
    printf '[web]\nport = %s\n' "${WEB[$n]}" > "$DEMO/$n/roles/transcode/service.toml"
done
cat "$DEMO/homeserver/roles/transcode/service.toml"
both_healthy() { [ "$(rm_ services --json --dir "$DEMO/laptop" 2>/dev/null | grep -oE '"health": ?"healthy"' | wc -l)" -eq 2 ]; }
deadline 20 both_healthy
rm_ services --dir "$DEMO/laptop"
"$BIN" connect transcode/web --local "$LOCAL" --dir "$DEMO/laptop" > "$DEMO/connect.txt" & PIDS[connect]=$!
get() { curl -s --max-time 5 "http://127.0.0.1:$LOCAL/"; }
served_by() { has "served by $1" get; }
deadline 10 served_by homeserver
cat "$DEMO/connect.txt"
echo "\$ curl http://127.0.0.1:$LOCAL/      # on the laptop"
get
say "the home server is cut off (its agent killed): the laptop's next connection goes to the pi at once"
kill -9 "${PIDS[homeserver]}"; wait "${PIDS[homeserver]}" 2>/dev/null || true; unset 'PIDS[homeserver]'
get
say "it comes back: new connections go back to it"
start homeserver
deadline 20 served_by homeserver
get
kill "${PIDS[connect]}" 2>/dev/null; wait "${PIDS[connect]}" 2>/dev/null || true; unset 'PIDS[connect]'

say "background work: a nightly reindex for the home server's idle hours (roles/metabolism/schedule.toml)"
"$BIN" watch --dir "$DEMO/homeserver" > "$DEMO/runs.txt" & WATCH=$!
rm_ signal set idle=false --dir "$DEMO/homeserver" >/dev/null      # someone is at the home server
mkdir -p "$DEMO/homeserver/roles/metabolism"
cat > "$DEMO/homeserver/roles/metabolism/reindex" <<'TASK'
#!/bin/sh
for i in 1 2 3 4 5 6; do echo "reindexing part $i (run $ROLEMESH_RUN_ID)"; sleep 0.5; done
TASK
chmod +x "$DEMO/homeserver/roles/metabolism/reindex"
printf '[reindex]\nevery = "1d"\nidle = "15m"\n' > "$DEMO/homeserver/roles/metabolism/schedule.toml"
cat "$DEMO/homeserver/roles/metabolism/schedule.toml"
echo "\$ rolemesh grant homeserver metabolism      # on desk: roles are granted by an introducer"
rm_ grant homeserver metabolism --dir "$DEMO/desk"
granted() { grep -q "metabolism" "$DEMO/homeserver/keys/homeserver.pub"; }
deadline 10 granted
rm_ roles add metabolism --dir "$DEMO/homeserver"
sched_state() { has "\"state\": ?\"$1\"" rm_ schedules --json --dir "$DEMO/homeserver"; }
deadline 10 sched_state waiting
rm_ schedules --dir "$DEMO/homeserver"
say "the user leaves: the home server is idle (pinned here), the job starts at the lowest priority"
rm_ signal set idle=true --dir "$DEMO/homeserver" >/dev/null
deadline 15 sched_state running
sleep 1
say "the user returns: the run is paused (SIGSTOP) within 2 s"
rm_ signal set idle=false --dir "$DEMO/homeserver" >/dev/null
deadline 3 sched_state paused
rm_ schedules --dir "$DEMO/homeserver"
job=$(pgrep -f "$DEMO/homeserver/roles/metabolism/reindex" | head -1 || true)
[ -n "$job" ] && ps -o pid,stat,ni,cls,args -p "$job" --ppid "$job" || true     # T: stopped, N: niced, IDL: SCHED_IDLE
say "idle again: resumed (SIGCONT), and it finishes"
rm_ signal set idle=true --dir "$DEMO/homeserver" >/dev/null
deadline 15 sched_state done
rm_ schedules --dir "$DEMO/homeserver"
sleep 0.3
cat "$DEMO/runs.txt" | grep run- || true
kill "$WATCH" 2>/dev/null; wait "$WATCH" 2>/dev/null || true; WATCH=""

say "everyone leaves gracefully"
for n in desk pi laptop homeserver; do rm_ leave --dir "$DEMO/$n"; unset "PIDS[$n]"; done
echo "done: the mesh stopped cleanly"
