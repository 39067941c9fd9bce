#!/usr/bin/env bash
# The big-queue benchmark of issue #4: with the destination down, queue
# QUEUE_MESSAGES messages (default 1,000,000, one recipient each: the
# heaviest case for the index, one item per recipient), report the relay's
# memory, then restart it on that spool and time how long until it is
# delivering again (sink up, `queue retry --all` at once).
#   QUEUE_MESSAGES=200000 bench/queue1m.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
POSTHORN=${POSTHORN_BIN:-$ROOT/build/posthorn}
N=${QUEUE_MESSAGES:-1000000}
WORK=$(mktemp -d "${BENCH_TMPDIR:-/tmp}/posthorn-q1m.XXXXXX")
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; [ "${BENCH_KEEP:-0}" = 1 ] || rm -rf "$WORK"; }
trap cleanup EXIT
log() { echo "$(date +%T) queue1m: $*" >&2; }
port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

"$ROOT/scripts/deps.sh" --bench
mkdir -p "$ROOT/build/bench"
cc -O2 -o "$ROOT/build/bench/sink" "$ROOT/bench/sink.c"
SMTP=$(port); SINK=$(port); HTTP=$(port)
cat >"$WORK/q.conf" <<CONF
[server]
hostname = relay.bench
data_dir = $WORK/data
[listener.in]
address = 127.0.0.1:$SMTP
auth = off
max_connections_per_ip = 1000
[relay]
smarthost = 127.0.0.1:$SINK
smarthost_tls = none
retry = 1h
[domain.*]
max_connections = 20
max_messages_per_connection = 1000
[http]
address = 127.0.0.1:$HTTP
CONF
wait_port() { for _ in $(seq 1 300); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
start_relay() {
	"$POSTHORN" serve -c "$WORK/q.conf" >>"$WORK/relay.log" 2>&1 &
	RELAY=$!
	PIDS+=("$RELAY")
}
mem() { awk '/VmRSS|VmHWM/ {printf "%s %.1f MB  ", $1, $2/1024}' "/proc/$1/status"; }

start_relay
wait_port "$SMTP"
log "queueing $N messages of 2 KB with the destination down"
t0=$(date +%s.%N)
smtp-source -d -s 20 -m "$N" -l 2048 -f from@bench.test -t to@dest.test "127.0.0.1:$SMTP"
t1=$(date +%s.%N)
log "accepted $N in $(echo "$t1 - $t0" | bc) s ($(echo "$N / ($t1 - $t0)" | bc) msg/s)"
# wait until every item has had its failed attempt (the log says deferred)
for _ in $(seq 1 600); do
	d=$(grep -c 'status=deferred' "$WORK/relay.log" || true)
	[ "$d" -ge "$N" ] && break
	sleep 1
done
log "after queueing and deferring: $(mem "$RELAY")"
queued=$("$POSTHORN" -c "$WORK/q.conf" queue list | wc -l)
log "queue holds $queued messages"
kill -TERM "$RELAY"; wait "$RELAY" || true
"$ROOT/build/bench/sink" -p "$SINK" -o "$WORK/sink.count" >"$WORK/sink.log" 2>&1 &
PIDS+=($!)
t2=$(date +%s.%N)
start_relay
wait_port "$SMTP"
t3=$(date +%s.%N)
for _ in $(seq 1 600); do "$POSTHORN" -c "$WORK/q.conf" queue retry --all >/dev/null 2>&1 && break; sleep 0.05; done
for _ in $(seq 1 1200); do
	grep -q 'status=sent' "$WORK/relay.log" && break
	sleep 0.05
done
t4=$(date +%s.%N)
log "restart: listening after $(echo "$t3 - $t2" | bc) s, first delivery after $(echo "$t4 - $t2" | bc) s; $(mem "$RELAY")"
grep 'event=sched_loaded' "$WORK/relay.log" | tail -1 >&2
