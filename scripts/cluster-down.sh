#!/usr/bin/env bash
# Stops what scripts/cluster-up.sh started (listed in DIR/started), nodes
# first, then PostgreSQL and Redis, and removes DIR (--keep: leaves it).
# Usage: scripts/cluster-down.sh DIR [--keep]
set -uo pipefail

usage() {
	echo "usage: $0 DIR [--keep]   (DIR: the cluster dir cluster-up.sh printed)" >&2
	exit 2
}
DIR=
KEEP=
for a in "$@"; do
	case "$a" in
	--keep) KEEP=--keep ;;
	-*) echo "$0: unknown option $a" >&2; usage ;;
	*) [ -z "$DIR" ] || usage; DIR=$a ;;
	esac
done
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
if [ -z "$DIR" ] || [ ! -f "$DIR/started" ]; then
	usage
fi

stop_pid() { # pidfile what
	local pid
	[ -f "$1" ] || return 0
	pid=$(cat "$1")
	kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid"
	for _ in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || { echo "stopped $2 (pid $pid)"; return 0; }
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null
	echo "killed $2 (pid $pid): it did not stop within 10 s"
}

as_pg() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u "${PGUSER_OS:-postgres}" -- "$@"
	else
		"$@"
	fi
}

# Nodes first (they may still write to the shared engines), then the engines.
grep '^node ' "$DIR/started" | while read -r _ pidfile; do
	stop_pid "$pidfile" "node $(dirname "$pidfile")"
done
grep '^postgres ' "$DIR/started" | while read -r _ data; do
	[ -f "$data/postmaster.pid" ] || continue # stopped already
	as_pg "$PGBIN/pg_ctl" -D "$data" -m fast -w stop >/dev/null && echo "stopped postgres ($data)"
done
grep '^redis ' "$DIR/started" | while read -r _ pidfile; do
	stop_pid "$pidfile" "redis"
done
if [ "$KEEP" = "--keep" ]; then
	echo "kept $DIR"
else
	rm -rf "$DIR"
	echo "removed $DIR"
fi
