#!/bin/bash
# The API cases (issue 11): a fresh Posthorn whose smarthost is the counting
# sink (bench/sink.c), an account with a key, then bench/api_load.py:
#   single: API_SINGLE messages (default 20000) from 20 keep-alive clients
#   batch:  API_BATCHES batches (default 10) of 1,000 recipients
# Prints the load generator's lines. Run from the top of the tree after
# `make all`; BENCH_TMPDIR picks the disk (never tmpfs). API_SMOKE=1 runs
# 200 singles and one batch, to check the harness.
set -euo pipefail
cd "$(dirname "$0")/.."
POSTHORN=$PWD/build/posthorn
SINGLE=${API_SINGLE:-20000} BATCHES=${API_BATCHES:-10}
[ "${API_SMOKE:-0}" = 1 ] && SINGLE=200 BATCHES=1
WORK=$(mktemp -d "${BENCH_TMPDIR:-/var/tmp}/posthorn-api-bench.XXXXXX")
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_listen() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

mkdir -p build/bench
cc -O2 -Wall -o build/bench/sink bench/sink.c
SINK=$(free_port) SMTP=$(free_port) HTTP=$(free_port)
build/bench/sink -p "$SINK" -o "$WORK/sink.count" 2>"$WORK/sink.log" & PIDS+=($!)
cat >"$WORK/bench.conf" <<CONF
[server]
hostname = relay.bench.test
data_dir = $WORK/data
[listener.bench]
address = 127.0.0.1:$SMTP
tls = none
auth = off
[relay]
smarthost = 127.0.0.1:$SINK
smarthost_tls = none
[domain.*]
max_connections = 20
max_messages_per_connection = 1000
max_rate = unlimited
[http]
address = 127.0.0.1:$HTTP
max_connections = 1000
CONF
"$POSTHORN" serve -c "$WORK/bench.conf" >"$WORK/posthorn.log" 2>&1 & PIDS+=($!)
wait_listen "$HTTP" || { echo "posthorn did not listen"; cat "$WORK/posthorn.log"; exit 1; }
"$POSTHORN" -c "$WORK/bench.conf" user add bench --domain bench.test --password-stdin <<<"bench password 1234" >/dev/null
KEY=$("$POSTHORN" -c "$WORK/bench.conf" apikey create bench)
/usr/bin/python3 bench/api_load.py single "http://127.0.0.1:$HTTP" "$KEY" "$SINGLE" 20
/usr/bin/python3 bench/api_load.py batch "http://127.0.0.1:$HTTP" "$KEY" 1000 "$BATCHES"
