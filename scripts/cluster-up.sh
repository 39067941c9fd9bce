#!/usr/bin/env bash
# Starts a local Posthorn cluster on loopback, without Docker (docs/cluster.md):
#   - redis-server on a free loopback port (append-only file on);
#   - PostgreSQL 15 (initdb/pg_ctl from /usr/lib/postgresql/15/bin), run as an
#     unprivileged cluster in the same temporary directory, if it is installed;
#   - N Posthorn nodes, each with its own data_dir, SMTP and HTTP port, and a
#     config whose [cluster] section points at them.
# Usage: scripts/cluster-up.sh [N]   (default 3; POSTHORN_BIN overrides build/posthorn;
#        SMARTHOST=HOST:PORT sends all mail there, without TLS: a local test
#        sink such as python3 -m aiosmtpd -n -l 127.0.0.1:2525)
# Prints what it started and the directory to give scripts/cluster-down.sh.
set -euo pipefail

N=${1:-3}
case "$N" in '' | *[!0-9]* | 0) echo "usage: $0 [N >= 1]" >&2; exit 2 ;; esac
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${POSTHORN_BIN:-$ROOT/build/posthorn}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
[ -x "$BIN" ] || { echo "no $BIN: run make first" >&2; exit 1; }
command -v redis-server >/dev/null || { echo "no redis-server: run scripts/deps.sh" >&2; exit 1; }

DIR=$(mktemp -d /tmp/posthorn-cluster.XXXXXX)
chmod 755 "$DIR"
STARTED="$DIR/started" # one line per thing started: KIND PIDFILE-or-DIR
: >"$STARTED"
# A failure half-way stops what was started.
trap 'echo "cluster-up failed; stopping what it started" >&2; "$ROOT/scripts/cluster-down.sh" "$DIR" >&2 || true' ERR

free_port() {
	/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_for() { # seconds, command...
	local t=$1
	shift
	for _ in $(seq $((t * 10))); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "timed out waiting for: $*" >&2
	return 1
}

start_redis() {
	REDIS_PORT=$(free_port)
	mkdir -p "$DIR/redis"
	redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$DIR/redis" --save "" \
		--appendonly yes --daemonize yes --pidfile "$DIR/redis/redis.pid" \
		--logfile "$DIR/redis/redis.log"
	echo "redis $DIR/redis/redis.pid" >>"$STARTED"
	wait_for 10 redis-cli -p "$REDIS_PORT" ping
	REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
}

# As root, PostgreSQL runs as the postgres user (initdb refuses root).
as_pg() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u "${PGUSER_OS:-postgres}" -- "$@"
	else
		"$@"
	fi
}

start_postgres() {
	PG_URL=""
	if [ ! -x "$PGBIN/initdb" ]; then
		echo "PostgreSQL: not installed ($PGBIN/initdb), skipped"
		return 0
	fi
	PG_PORT=$(free_port)
	mkdir -p "$DIR/pg"
	[ "$(id -u)" -ne 0 ] || chown "${PGUSER_OS:-postgres}" "$DIR/pg"
	as_pg "$PGBIN/initdb" -D "$DIR/pg/data" -U posthorn --auth=trust -E UTF8 >"$DIR/pg/initdb.log"
	as_pg "$PGBIN/pg_ctl" -D "$DIR/pg/data" -l "$DIR/pg/postgres.log" -w \
		-o "-p $PG_PORT -k $DIR/pg -c listen_addresses=127.0.0.1" start >/dev/null
	echo "postgres $DIR/pg/data" >>"$STARTED"
	as_pg "$PGBIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U posthorn posthorn
	PG_URL="postgresql://posthorn@127.0.0.1:$PG_PORT/posthorn"
}

write_node_conf() { # i smtp_port http_port
	local d="$DIR/node$1"
	mkdir -p "$d"
	cat >"$d/posthorn.conf" <<CONF
; written by scripts/cluster-up.sh
[server]
hostname = node$1.cluster.test
data_dir = $d/data
[listener.submission]
address = 127.0.0.1:$2
tls = none
; AUTH in clear is allowed here only because every client is on loopback
; (trusted_networks); loopback clients may also relay without it
auth = optional
[relay]
trusted_networks = 127.0.0.0/8, ::1/128
$([ -z "${SMARTHOST:-}" ] || printf 'smarthost = %s\nsmarthost_tls = none\n' "$SMARTHOST")
[http]
address = 127.0.0.1:$3
[cluster]
redis = $REDIS_URL
nodes = $N
secret_key_file = $DIR/secret.key
CONF
	[ -z "$PG_URL" ] || echo "postgres = $PG_URL" >>"$d/posthorn.conf"
}

start_node() { # i
	local d="$DIR/node$1" smtp http
	smtp=$(free_port)
	http=$(free_port)
	write_node_conf "$1" "$smtp" "$http"
	nohup "$BIN" serve -c "$d/posthorn.conf" </dev/null >"$d/server.stdout" 2>"$d/server.log" &
	echo $! >"$d/posthorn.pid"
	echo "node $d/posthorn.pid" >>"$STARTED"
	wait_for 20 grep -q "event=started" "$d/server.log"
	echo "node$1: smtp 127.0.0.1:$smtp http 127.0.0.1:$http config $d/posthorn.conf log $d/server.log"
}

# One secret for every node: DKIM, unsubscribe, tracking and VERP keys
# shared through PostgreSQL (docs/cluster.md).
(umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$DIR/secret.key")
start_redis
echo "redis: $REDIS_URL (log $DIR/redis/redis.log)"
start_postgres
[ -z "$PG_URL" ] || echo "postgres: $PG_URL (data $DIR/pg/data, log $DIR/pg/postgres.log)"
for i in $(seq "$N"); do
	start_node "$i"
done
trap - ERR
echo "cluster dir: $DIR"
echo "the CLI of a node: $BIN -c $DIR/node1/posthorn.conf cluster status (or export POSTHORN_CONFIG=$DIR/node1/posthorn.conf)"
if [ -n "${SMARTHOST:-}" ]; then
	echo "mail goes to the smarthost $SMARTHOST (without TLS)"
else
	echo "note: the nodes deliver to each recipient domain's real MX; to keep test mail local, start with SMARTHOST=HOST:PORT (docs/cluster.md)"
fi
echo "stop it with: scripts/cluster-down.sh $DIR"
