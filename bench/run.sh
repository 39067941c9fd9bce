#!/usr/bin/env bash
# Posthorn against Postfix on this machine, same run, same parameters.
# bench/README.md explains the method; `make bench` / `make bench-smoke`.
#
# Per case, for Posthorn then for Postfix: a fresh counting sink
# (bench/sink.c) on a loopback port, a fresh relay (temp data_dir / a private
# Postfix instance in a temp dir) that sends everything to the sink, then the
# load (smtp-source, or bench/loadgen.c for STARTTLS), then a wait until the
# sink has every message and recipient. Then a second, latency pass with
# loadgen (same sessions, messages, size) for the end-of-DATA-to-250 figures.
# Last, a smaller run of each relay under strace counts fsync calls.
# Cases f and g are Posthorn's HTTP API alone (Postfix has none): loadgen
# -A posts single messages (f) or batches of 1,000 recipients (g) to
# /v1/messages over keep-alive connections. Case h is three Posthorn nodes
# sharing a PostgreSQL 15 and a Redis started here, against one node on
# SQLite: throughput, and the CPU per message of the nodes and of the
# shared engines.
#
# Environment:
#   BENCH_SMOKE=1      200 messages, cases a and d only (CI); fails on any loss
#   BENCH_CASES="a c"  run only these cases (default: a b c d e f g h; smoke: a d)
#   BENCH_TIMEOUT=300  seconds allowed for each load or wait step
#   BENCH_STALL=60     seconds without progress at the sink that count as a stall
#   BENCH_TMPDIR=/tmp  where the spools go (must be a real disk, not tmpfs)
#   BENCH_KEEP=1       keep the temp dir (it is always kept on failure)
#   BENCH_FSYNC=0      skip the strace fsync count
#   POSTHORN_BIN=path  the posthorn binary to measure (default build/posthorn)
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1

if [ "$(id -u)" -ne 0 ]; then
	# A private Postfix instance needs root (its master binds and drops
	# privileges; set-permissions chowns its queue), and so do reading the
	# PSS of its processes and strace -p.
	if command -v sudo >/dev/null 2>&1; then
		exec sudo -E "$0" "$@"
	fi
	echo "bench: must run as root (private Postfix instance, /proc of its processes, strace)" >&2
	exit 1
fi

scripts/deps.sh --bench || { echo "bench: scripts/deps.sh --bench failed" >&2; exit 1; }

SMOKE=${BENCH_SMOKE:-0}
TIMEOUT=${BENCH_TIMEOUT:-300}
STALL=${BENCH_STALL:-60}
POSTHORN=${POSTHORN_BIN:-$ROOT/build/posthorn}
BB=$ROOT/build/bench
RESULTS=$ROOT/bench/results
CLK_TCK=$(getconf CLK_TCK)
if [ "$SMOKE" = 1 ]; then
	CASES=${BENCH_CASES:-a d}
else
	CASES=${BENCH_CASES:-a b c d e f g h}
fi

log() { printf '%s bench: %s\n' "$(date +%T)" "$*" >&2; }
now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }

[ -x "$POSTHORN" ] || { log "$POSTHORN is missing: run make first"; exit 1; }

WORK=$(mktemp -d "${BENCH_TMPDIR:-/tmp}/posthorn-bench.XXXXXX") || exit 1
chmod 755 "$WORK" # Postfix's unprivileged daemons walk into their queue under it
KEEP=${BENCH_KEEP:-0}
FAILED=0
PIDS=()    # background processes we started (sinks, Posthorn, samplers, strace)
PF_ETCS=() # private Postfix instances started

stop_pid() { # pid [seconds before SIGKILL]
	local pid=$1 wait_s=${2:-10} i
	kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null
	for ((i = 0; i < wait_s * 10; i++)); do
		kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
		sleep 0.1
	done
	log "pid $pid did not stop after ${wait_s}s of SIGTERM: SIGKILL"
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	return 0
}

cleanup() {
	local p
	for p in "${PF_ETCS[@]}"; do pf_stop "$p"; done
	for p in "${PIDS[@]}"; do stop_pid "$p" 35; done
	for p in "${PG_DATAS[@]}"; do pg_stop "$p"; done
	if [ "$KEEP" = 1 ] || [ "$FAILED" = 1 ]; then
		log "temp dir kept: $WORK (relay logs, sink counts, Postfix maillog)"
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT
trap 'log "interrupted"; FAILED=1; exit 130' INT TERM

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_listen() { # port seconds
	local i
	for ((i = 0; i < $2 * 20; i++)); do
		[ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ] && return 0
		sleep 0.05
	done
	return 1
}

# ---------- the system Postfix must not hold port 25 ----------
if ss -Hltnp 'sport = :25' 2>/dev/null | grep -q '"master"'; then
	log "the system Postfix listens on port 25: stopping it (postfix stop)"
	postfix stop >/dev/null 2>&1 || service postfix stop >/dev/null 2>&1 || true
fi

# ---------- tools ----------
mkdir -p "$BB" "$RESULTS"
cc -O2 -Wall -o "$BB/sink" bench/sink.c || { log "cannot build bench/sink.c"; exit 1; }
cc -O2 -Wall -pthread -o "$BB/loadgen" bench/loadgen.c -lssl -lcrypto ||
	{ log "cannot build bench/loadgen.c"; exit 1; }
command -v smtp-source >/dev/null || { log "smtp-source missing (scripts/deps.sh --bench)"; exit 1; }

if [ "$(stat -f -c %T "$WORK")" = tmpfs ]; then
	log "WARNING: $WORK is on tmpfs: fsync costs nothing there, figures are not durable ones"
fi

openssl req -x509 -newkey rsa:2048 -nodes -keyout "$WORK/key.pem" -out "$WORK/cert.pem" \
	-days 2 -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
	>/dev/null 2>&1 || { log "openssl req failed"; exit 1; }

# ---------- sink ----------
SINK_PID= SINK_PORT= SINK_FILE=
sink_start() { # dir
	SINK_PORT=$(free_port)
	SINK_FILE=$1/sink.count
	rm -f "$1/first.eml"
	"$BB/sink" -p "$SINK_PORT" -o "$SINK_FILE" -k "$1/first.eml" 2>"$1/sink.log" &
	SINK_PID=$!
	PIDS+=("$SINK_PID")
	wait_listen "$SINK_PORT" 5 || { log "sink did not start: $(cat "$1/sink.log")"; return 1; }
}
sink_stop() { [ -n "$SINK_PID" ] && stop_pid "$SINK_PID" 5; SINK_PID=; }
SINK_M=0 SINK_R=0 SINK_LAST=0
sink_read() {
	local m r c f l
	read -r m r c f l 2>/dev/null <"$SINK_FILE" || return 1
	SINK_M=$m SINK_R=$r SINK_LAST=$l
}

# ---------- relays ----------
RELAY= RELAY_PORT= PH_PID= PF_ETC= PF_MASTER= RELAY_LOG= PH_HTTP= PH_KEY=

# A Posthorn config: listener, smarthost (the sink), limits, HTTP; extra
# lines (a [cluster] section) appended as given.
ph_conf() { # dir tls(0/1) smtp_port http_port [extra]
	local d=$1 tls=$2
	{
		echo "[server]"
		echo "hostname = relay.bench.test"
		echo "data_dir = $d/data"
		echo "[listener.bench]"
		echo "address = 127.0.0.1:$3"
		echo "tls = $([ "$tls" = 1 ] && echo starttls || echo none)"
		echo "auth = off"
		echo "max_connections = 1000"
		echo "max_connections_per_ip = 1000"
		if [ "$tls" = 1 ]; then
			echo "[tls]"
			echo "cert = $WORK/cert.pem"
			echo "key = $WORK/key.pem"
		fi
		echo "[relay]"
		echo "smarthost = 127.0.0.1:$SINK_PORT"
		echo "smarthost_tls = none"
		echo "[domain.*]"
		echo "max_connections = 20"
		echo "max_messages_per_connection = 1000"
		echo "max_rate = unlimited"
		echo "[http]"
		echo "address = 127.0.0.1:$4"
		[ -z "${5:-}" ] || printf '%s\n' "$5"
	} >"$d/bench.conf"
	"$POSTHORN" -c "$d/bench.conf" check-config >"$d/check-config.log" 2>&1 ||
		{ log "posthorn check-config failed: $(cat "$d/check-config.log")"; return 1; }
}

ph_start() { # dir tls(0/1)
	local d=$1 tls=$2 http
	RELAY_PORT=$(free_port)
	http=$(free_port)
	RELAY_LOG=$d/posthorn.log
	ph_conf "$d" "$tls" "$RELAY_PORT" "$http" || return 1
	ph_keys "$d" || return 1
	PH_HTTP=$http
	[ "$TOOL" = loadgen-api ] && { ph_api_key "$d" || return 1; }
	"$POSTHORN" serve -c "$d/bench.conf" >"$RELAY_LOG" 2>&1 &
	PH_PID=$!
	PIDS+=("$PH_PID")
	wait_listen "$RELAY_PORT" 15 || { log "posthorn did not listen; log: $RELAY_LOG"; return 1; }
}

# The DKIM case: keys for bench.test (the From domain of smtp-source and
# loadgen), made by `posthorn dkim keygen`, active at once. DKIM_KEYS is
# "" (no key), "rsa2048", "ed25519" or "rsa2048 ed25519" (dual signing).
DKIM_KEYS=
ph_keys() { # dir
	local a
	for a in $DKIM_KEYS; do
		"$POSTHORN" -c "$1/bench.conf" dkim keygen bench.test --selector "b-$a" --algo "$a" \
			>>"$1/keygen.log" 2>&1 || { log "dkim keygen failed: $(tail -2 "$1/keygen.log")"; return 1; }
	done
}

# The API case: an account owning bench.test (the From domain) and its key.
ph_api_key() { # dir
	"$POSTHORN" -c "$1/bench.conf" user add bench --domain bench.test --password-stdin \
		<<<"bench password 1234" >>"$1/apikey.log" 2>&1 &&
		PH_KEY=$("$POSTHORN" -c "$1/bench.conf" apikey create bench 2>>"$1/apikey.log") ||
		{ log "user add / apikey create failed: $(tail -2 "$1/apikey.log")"; return 1; }
}

# OpenDKIM for Postfix, a private instance: its own config, key and
# loopback port in the case's temp dir (never the system service), the
# same canonicalization, header set and oversigned From as Posthorn.
OD_PID= OD_PORT=
od_start() { # dir
	local d=$1/opendkim i
	mkdir -p "$d"
	OD_PORT=$(free_port)
	openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$d/key.pem" 2>/dev/null ||
		{ log "openssl genpkey failed"; return 1; }
	chmod 600 "$d/key.pem"
	cat >"$d/opendkim.conf" <<-EOF
		Syslog no
		Background no
		Mode s
		Domain bench.test
		Selector b1
		KeyFile $d/key.pem
		Socket inet:$OD_PORT@127.0.0.1
		PidFile $d/opendkim.pid
		Canonicalization relaxed/relaxed
		SignatureAlgorithm rsa-sha256
		SignHeaders From,To,Cc,Subject,Date,Message-ID,Reply-To,MIME-Version,Content-Type,Content-Transfer-Encoding,List-Unsubscribe,List-Unsubscribe-Post
		OversignHeaders From
		InternalHosts 127.0.0.1
		RequireSafeKeys no
	EOF
	opendkim -f -x "$d/opendkim.conf" >"$d/opendkim.log" 2>&1 &
	OD_PID=$!
	PIDS+=("$OD_PID")
	for ((i = 0; i < 100; i++)); do
		[ -n "$(ss -Hltn "sport = :$OD_PORT" 2>/dev/null)" ] && return 0
		kill -0 "$OD_PID" 2>/dev/null || break
		sleep 0.05
	done
	log "opendkim did not start: $(tail -3 "$d/opendkim.log")"
	return 1
}
od_stop() { [ -n "$OD_PID" ] && stop_pid "$OD_PID" 10; OD_PID=; }

pf_stop() { # etc dir
	local etc=$1 q pid i kids
	q=$(dirname "$etc")/queue
	[ -r "$q/pid/master.pid" ] || return 0
	read -r pid 2>/dev/null <"$q/pid/master.pid" || return 0
	kill -0 "$pid" 2>/dev/null || return 0
	postfix -c "$etc" stop >/dev/null 2>&1
	for ((i = 0; i < 150; i++)); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	log "Postfix master $pid did not stop: SIGKILL to it and its children"
	read -r -a kids 2>/dev/null <"/proc/$pid/task/$pid/children"
	kill -KILL "$pid" "${kids[@]}" 2>/dev/null
}

pf_start() { # dir tls(0/1)
	local d=$1/postfix tls=$2 i
	mkdir -p "$d/etc" "$d/queue" "$d/data"
	RELAY_PORT=$(free_port)
	RELAY_LOG=$d/maillog
	PF_ETC=$d/etc
	cat >"$d/etc/main.cf" <<-EOF
		# private instance written by bench/run.sh; Postfix defaults otherwise
		# (queue files are fsynced before the 250, as always).
		compatibility_level = 3.6
		queue_directory = $d/queue
		data_directory = $d/data
		mail_owner = postfix
		setgid_group = postdrop
		myhostname = relay.bench.test
		mydomain = bench.test
		myorigin = \$myhostname
		mydestination =
		local_recipient_maps =
		local_transport = error:local delivery disabled
		alias_maps =
		alias_database =
		biff = no
		inet_interfaces = 127.0.0.1
		inet_protocols = ipv4
		mynetworks = 127.0.0.0/8
		relayhost = [127.0.0.1]:$SINK_PORT
		smtpd_relay_restrictions = permit_mynetworks, reject
		smtpd_recipient_restrictions = permit_mynetworks, reject
		default_process_limit = 100
		smtp_destination_concurrency_limit = 20
		default_destination_concurrency_limit = 20
		smtp_tls_security_level = none
		maillog_file = $d/maillog
		maillog_file_prefixes = $d
	EOF
	if [ -n "$DKIM_KEYS" ]; then
		od_start "$1" || return 1
		cat >>"$d/etc/main.cf" <<-EOF
			smtpd_milters = inet:127.0.0.1:$OD_PORT
			non_smtpd_milters = \$smtpd_milters
			milter_default_action = tempfail
		EOF
	fi
	if [ "$tls" = 1 ]; then
		cat >>"$d/etc/main.cf" <<-EOF
			smtpd_tls_security_level = may
			smtpd_tls_cert_file = $WORK/cert.pem
			smtpd_tls_key_file = $WORK/key.pem
		EOF
	else
		echo "smtpd_tls_security_level = none" >>"$d/etc/main.cf"
	fi
	# Debian's master.cf with every service out of chroot (a chroot would need
	# copies of /etc files in the temp queue) and without local delivery.
	cat >"$d/etc/master.cf" <<-EOF
		127.0.0.1:$RELAY_PORT inet n - n - - smtpd
		pickup     unix n - n 60    1 pickup
		cleanup    unix n - n -     0 cleanup
		qmgr       unix n - n 300   1 qmgr
		tlsmgr     unix - - n 1000? 1 tlsmgr
		rewrite    unix - - n -     - trivial-rewrite
		bounce     unix - - n -     0 bounce
		defer      unix - - n -     0 bounce
		trace      unix - - n -     0 bounce
		verify     unix - - n -     1 verify
		flush      unix n - n 1000? 0 flush
		proxymap   unix - - n -     - proxymap
		proxywrite unix - - n -     1 proxymap
		smtp       unix - - n -     - smtp
		relay      unix - - n -     - smtp
		showq      unix n - n -     - showq
		error      unix - - n -     - error
		retry      unix - - n -     - error
		discard    unix - - n -     - discard
		anvil      unix - - n -     1 anvil
		scache     unix - - n -     1 scache
		postlog    unix-dgram n - n - 1 postlogd
	EOF
	{
		postfix -c "$d/etc" set-permissions &&
			postfix -c "$d/etc" check &&
			postfix -c "$d/etc" start
	} >"$d/start.log" 2>&1 || { log "postfix start failed: $(tail -5 "$d/start.log")"; return 1; }
	PF_ETCS+=("$d/etc")
	for ((i = 0; i < 100; i++)); do
		read -r PF_MASTER 2>/dev/null <"$d/queue/pid/master.pid" && kill -0 "$PF_MASTER" 2>/dev/null && break
		PF_MASTER=
		sleep 0.1
	done
	[ -n "$PF_MASTER" ] || { log "postfix master did not start: $d/start.log"; return 1; }
	wait_listen "$RELAY_PORT" 15 || { log "postfix did not listen; log: $RELAY_LOG"; return 1; }
}

# ---------- the cluster (case h) ----------
# Three Posthorn nodes sharing one PostgreSQL 15 and one Redis, all started
# here in the case's temp dir (PostgreSQL as an unprivileged cluster run by
# the postgres user, as scripts/cluster-up.sh does, with its defaults:
# fsync on), each node with its own data_dir (spool) and SMTP listener,
# all delivering to the one sink. Stopped by relay_stop, and by cleanup on
# any failure.
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
CL_NODES=3
CL_PIDS=() CL_PORTS=() CL_REDIS_PID= CL_PG_DATA=
PG_DATAS=() # PostgreSQL data dirs started (cleanup stops them)

as_postgres() { runuser -u postgres -- "$@"; }

pg_stop() { # data dir
	as_postgres "$PGBIN/pg_ctl" -D "$1" -m fast -w -t 30 stop >/dev/null 2>&1
}

cl_pg_start() { # dir (sets CL_PG_DATA, CL_PG_URL)
	local d=$1/pg port
	[ -x "$PGBIN/initdb" ] || { log "no $PGBIN/initdb (Debian's postgresql-15: scripts/deps.sh)"; return 1; }
	mkdir -p "$d" && chown postgres "$d"
	port=$(free_port)
	as_postgres "$PGBIN/initdb" -D "$d/data" -U posthorn --auth=trust -E UTF8 >"$d/initdb.log" 2>&1 ||
		{ log "initdb failed: $(tail -3 "$d/initdb.log")"; return 1; }
	as_postgres "$PGBIN/pg_ctl" -D "$d/data" -l "$d/postgres.log" -w -t 30 \
		-o "-p $port -k $d -c listen_addresses=127.0.0.1" start >"$d/pg_ctl.log" 2>&1 ||
		{ log "PostgreSQL did not start: $(tail -3 "$d/postgres.log")"; return 1; }
	PG_DATAS+=("$d/data")
	CL_PG_DATA=$d/data
	as_postgres "$PGBIN/createdb" -h 127.0.0.1 -p "$port" -U posthorn posthorn >"$d/createdb.log" 2>&1 ||
		{ log "createdb failed: $(cat "$d/createdb.log")"; return 1; }
	CL_PG_URL=postgresql://posthorn@127.0.0.1:$port/posthorn
}

cl_redis_start() { # dir (sets CL_REDIS_PID, CL_REDIS_URL)
	local d=$1/redis port i
	mkdir -p "$d"
	port=$(free_port)
	redis-server --port "$port" --bind 127.0.0.1 --dir "$d" --save "" --appendonly yes \
		--logfile "$d/redis.log" >/dev/null 2>&1 &
	CL_REDIS_PID=$!
	PIDS+=("$CL_REDIS_PID")
	for ((i = 0; i < 100; i++)); do
		redis-cli -p "$port" ping 2>/dev/null | grep -q PONG && { CL_REDIS_URL=redis://127.0.0.1:$port; return 0; }
		sleep 0.05
	done
	log "redis-server did not start: $(tail -3 "$d/redis.log")"
	return 1
}

cl_start() { # dir tls
	local d=$1 i nd http extra
	CL_PIDS=() CL_PORTS=()
	cl_pg_start "$d" && cl_redis_start "$d" || return 1
	extra=$(printf '[cluster]\npostgres = %s\nredis = %s\nnodes = %s' "$CL_PG_URL" "$CL_REDIS_URL" "$CL_NODES")
	for ((i = 1; i <= CL_NODES; i++)); do
		nd=$d/node$i
		mkdir -p "$nd"
		CL_PORTS+=("$(free_port)")
		http=$(free_port)
		ph_conf "$nd" "$2" "${CL_PORTS[-1]}" "$http" "$extra" || return 1
		"$POSTHORN" serve -c "$nd/bench.conf" >"$nd/posthorn.log" 2>&1 &
		CL_PIDS+=("$!")
		PIDS+=("$!")
		wait_listen "${CL_PORTS[-1]}" 15 || { RELAY_LOG=$nd/posthorn.log; log "node $i did not listen; log: $RELAY_LOG"; return 1; }
	done
	RELAY_LOG="$d/node{1..$CL_NODES}/posthorn.log"
	RELAY_PORT=${CL_PORTS[0]}
}

cl_stop() {
	local p
	for p in "${CL_PIDS[@]}"; do stop_pid "$p" 35; done
	[ -n "$CL_REDIS_PID" ] && stop_pid "$CL_REDIS_PID" 10
	[ -n "$CL_PG_DATA" ] && pg_stop "$CL_PG_DATA"
	CL_PIDS=() CL_REDIS_PID= CL_PG_DATA=
}

cl_alive() {
	local p
	for p in "${CL_PIDS[@]}"; do kill -0 "$p" 2>/dev/null || return 1; done
}

# PostgreSQL's processes: the postmaster and its children (backends that
# exit are reaped by the postmaster: its cutime/cstime hold their time).
pg_pids() {
	local pm kids
	[ -n "$CL_PG_DATA" ] || return 0
	read -r pm 2>/dev/null <"$CL_PG_DATA/postmaster.pid" || return 0
	read -r -a kids 2>/dev/null <"/proc/$pm/task/$pm/children"
	echo "$pm ${kids[*]}"
}

# The load of the cluster: one smtp-source per node, the messages and the
# sessions of the case shared between them, all at once.
cl_load() { # dir
	local i n s pids=() rc=0
	for ((i = 0; i < CL_NODES; i++)); do
		n=$((N / CL_NODES + (i < N % CL_NODES)))
		s=$((SESS / CL_NODES + (i < SESS % CL_NODES)))
		timeout "$TIMEOUT" smtp-source -d -s "$s" -m "$n" -l "$SIZE" -r "$RCPTS" \
			-f from@bench.test -t to@dest.test "127.0.0.1:${CL_PORTS[i]}" >"$1/load.$i.out" 2>&1 &
		pids+=("$!")
	done
	for i in "${pids[@]}"; do wait "$i" || rc=$?; done
	cat "$1"/load.*.out >"$1/load.out" 2>/dev/null
	return $rc
}

# Relays: posthorn, postfix, and in the DKIM case posthorn-ed25519 and
# posthorn-dual (the same Posthorn with other keys).
is_posthorn() { [[ $1 == posthorn* ]]; }
is_cluster() { [ "$1" = cluster ]; }
relay_start() { # relay dir tls
	RELAY=$1
	if is_cluster "$1"; then
		cl_start "$2" "$3"
	elif is_posthorn "$1"; then ph_start "$2" "$3"; else pf_start "$2" "$3"; fi
}
relay_stop() {
	if is_cluster "$RELAY"; then
		cl_stop
	elif is_posthorn "$RELAY"; then
		[ -n "$PH_PID" ] && stop_pid "$PH_PID" 35
		PH_PID=
	else
		[ -n "$PF_ETC" ] && pf_stop "$PF_ETC"
		PF_ETC= PF_MASTER=
		od_stop
	fi
}
relay_alive() {
	if is_cluster "$RELAY"; then
		cl_alive
	elif is_posthorn "$RELAY"; then kill -0 "$PH_PID" 2>/dev/null; else kill -0 "$PF_MASTER" 2>/dev/null; fi
}
# The relay's processes now: Posthorn's one process (all its threads), or
# Postfix's master and its children (and OpenDKIM, in the DKIM case); the
# cluster's nodes (PostgreSQL and Redis are counted apart: pg_pids, CL_REDIS_PID).
relay_pids() {
	local kids
	if is_cluster "$RELAY"; then
		echo "${CL_PIDS[*]}"
	elif is_posthorn "$RELAY"; then
		echo "$PH_PID"
	else
		read -r -a kids 2>/dev/null <"/proc/$PF_MASTER/task/$PF_MASTER/children"
		echo "$PF_MASTER ${kids[*]} $OD_PID"
	fi
}

# CPU ticks used so far: utime+stime+cutime+cstime of the relay's processes.
# A Postfix child that exits is reaped by the master, whose cutime/cstime
# then hold its time, so the difference of two readings counts every
# process that lived in between, even the ones that came and went.
relay_cpu() { cpu_ticks $(relay_pids); }
cpu_ticks() { # pid...
	local p line f total=0
	for p in "$@"; do
		read -r line 2>/dev/null <"/proc/$p/stat" || continue
		read -r -a f <<<"${line##*) }"
		total=$((total + f[11] + f[12] + f[13] + f[14]))
	done
	echo "$total"
}

# Busy ticks of the whole machine (every process, all cores): a cross-check.
sys_cpu() {
	local cpu u n s i w irq sirq st
	read -r cpu u n s i w irq sirq st _ </proc/stat
	echo $((u + n + s + irq + sirq + st))
}

# Samples the sum of PSS (kB) over the relay's processes every 100 ms, keeps
# the highest in FILE, until FILE.stop exists.
mem_sampler() { # file
	local file=$1 max=0 total p k v
	while [ ! -e "$file.stop" ]; do
		total=0
		for p in $(relay_pids); do
			while read -r k v _; do
				[ "$k" = Pss: ] && { total=$((total + v)); break; }
			done 2>/dev/null <"/proc/$p/smaps_rollup"
		done
		((total > max)) && { max=$total; echo "$max" >"$file"; }
		sleep 0.1
	done
}

# Waits until the sink has want_m messages and want_r recipients.
wait_sink() { # want_m want_r what
	local want_m=$1 want_r=$2 what=$3 start=$SECONDS changed=$SECONDS prev=-1
	while :; do
		sink_read
		if ((SINK_M >= want_m && SINK_R >= want_r)); then return 0; fi
		((SINK_M != prev)) && { prev=$SINK_M; changed=$SECONDS; }
		if ! relay_alive; then
			ERR="$RELAY died during $what: sink has $SINK_M/$want_m messages; log: $RELAY_LOG"
			return 1
		fi
		if ((SECONDS - changed >= STALL)); then
			ERR="$RELAY stalled during $what: sink has $SINK_M/$want_m messages, $SINK_R/$want_r recipients, no progress for ${STALL}s; log: $RELAY_LOG"
			return 1
		fi
		if ((SECONDS - start >= TIMEOUT)); then
			ERR="$RELAY timed out during $what after ${TIMEOUT}s: sink has $SINK_M/$want_m messages, $SINK_R/$want_r recipients; log: $RELAY_LOG"
			return 1
		fi
		sleep 0.02
	done
}

# ---------- one case for one relay ----------
declare -A R # R[case,relay,key]
case_params() { # case -> N SIZE RCPTS SESS TLS TOOL TITLE BATCH M LAT
	local n
	BATCH=1 # API batches (g): messages per request; N counts requests
	LAT=1   # a second, latency pass with loadgen after an smtp-source load
	case $1 in
	a) n=10000 SIZE=2048 RCPTS=1 SESS=20 TLS=0 TOOL=smtp-source
	   TITLE="(a) 2 KB, 1 recipient, 20 sessions" ;;
	b) n=2000 SIZE=102400 RCPTS=1 SESS=20 TLS=0 TOOL=smtp-source
	   TITLE="(b) 100 KB, 1 recipient, 20 sessions" ;;
	c) n=2000 SIZE=2048 RCPTS=50 SESS=20 TLS=0 TOOL=smtp-source
	   TITLE="(c) 2 KB, 50 recipients of one domain, 20 sessions" ;;
	d) n=10000 SIZE=2048 RCPTS=1 SESS=20 TLS=1 TOOL=loadgen
	   TITLE="(d) 2 KB, 1 recipient, 20 sessions, STARTTLS" ;;
	e) n=10000 SIZE=2048 RCPTS=1 SESS=20 TLS=0 TOOL=smtp-source
	   TITLE="(e) 2 KB, 1 recipient, 20 sessions, DKIM: Posthorn signing, Postfix with the OpenDKIM milter" ;;
	f) n=20000 SIZE=2048 RCPTS=1 SESS=20 TLS=0 TOOL=loadgen-api
	   TITLE="(f) HTTP API: POST /v1/messages, 2 KB, 1 recipient, 20 keep-alive clients (Posthorn only)" ;;
	g) n=10 SIZE=2048 RCPTS=1 SESS=1 TLS=0 TOOL=loadgen-api BATCH=1000
	   TITLE="(g) HTTP API: batches of 1,000 recipients from a 2 KB template, one at a time (Posthorn only)" ;;
	h) n=10000 SIZE=2048 RCPTS=1 SESS=20 TLS=0 TOOL=smtp-source LAT=0
	   TITLE="(h) cluster: 3 nodes sharing PostgreSQL 15 and Redis against 1 node on SQLite, 2 KB, 1 recipient, 20 sessions in all" ;;
	*) return 1 ;;
	esac
	[ "$SMOKE" = 1 ] && { [ "$BATCH" = 1 ] && n=200 || n=1; }
	N=$n
	M=$((N * BATCH)) # messages at the sink
}

loadgen_run() { # port n tlsflag latfile (stdout: loadgen's key=value line)
	local t=()
	[ "$3" = 1 ] && t=(-T)
	[ "$TOOL" = loadgen-api ] && t=(-A "$PH_KEY")
	[ "$BATCH" -gt 1 ] && t+=(-b "$BATCH")
	timeout "$TIMEOUT" "$BB/loadgen" -p "$1" -s "$SESS" -m "$2" -l "$SIZE" -r "$RCPTS" \
		-f from@bench.test -t to@dest.test "${t[@]}" -o "$4"
}

kv() { # key line -> value of key=value in line
	local x
	for x in $2; do [ "${x%%=*}" = "$1" ] && { echo "${x#*=}"; return; }; done
}

run_one() { # case relay dir
	local c=$1 relay=$2 d=$3 cpu0 cpu1 sys0 sys1 t0 t1 mem lg pg0 pg1 rd0 rd1
	ERR=
	sink_start "$d" || { ERR="sink did not start"; return 1; }
	relay_start "$relay" "$d" "$TLS" || { ERR="$relay did not start; log: $RELAY_LOG"; return 1; }

	rm -f "$d/pss" "$d/pss.stop"
	mem_sampler "$d/pss" &
	PIDS+=("$!")
	local sampler=$!
	cpu0=$(relay_cpu)
	pg0=$(cpu_ticks $(pg_pids))
	rd0=$(cpu_ticks $CL_REDIS_PID)
	sys0=$(sys_cpu)
	t0=$(now_ms)
	if is_cluster "$relay"; then
		cl_load "$d"
	elif [ "$TOOL" = smtp-source ]; then
		# -d: one connection per session for all its messages (as loadgen)
		timeout "$TIMEOUT" smtp-source -d -s "$SESS" -m "$N" -l "$SIZE" -r "$RCPTS" \
			-f from@bench.test -t to@dest.test "127.0.0.1:$RELAY_PORT" >"$d/load.out" 2>&1
	else
		local port=$RELAY_PORT
		[ "$TOOL" = loadgen-api ] && port=$PH_HTTP
		loadgen_run "$port" "$N" "$TLS" "$d/latency.txt" >"$d/load.out" 2>"$d/load.err"
	fi
	local rc=$?
	t1=$(now_ms)
	if [ $rc -ne 0 ]; then
		touch "$d/pss.stop"
		sink_read
		ERR="$TOOL against $relay exited $rc (124: timeout) after $((t1 - t0)) ms: $(tail -3 "$d/load.out" "$d/load.err" 2>/dev/null | tr '\n' ' '); sink has $SINK_M/$M; log: $RELAY_LOG"
		return 1
	fi
	wait_sink "$M" $((M * RCPTS)) "the $TOOL run" || { touch "$d/pss.stop"; return 1; }
	cpu1=$(relay_cpu)
	pg1=$(cpu_ticks $(pg_pids))
	rd1=$(cpu_ticks $CL_REDIS_PID)
	sys1=$(sys_cpu)
	touch "$d/pss.stop"
	wait "$sampler" 2>/dev/null
	R[$c,$relay,n]=$M
	R[$c,$relay,accept]=$(awk -v n="$M" -v ms=$((t1 - t0)) 'BEGIN{printf "%.0f", n*1000/ms}')
	R[$c,$relay,e2e]=$(awk -v n="$M" -v ms=$((SINK_LAST - t0)) 'BEGIN{printf "%.0f", n*1000/(ms>0?ms:1)}')
	R[$c,$relay,cpu]=$(ms_per_msg $((cpu1 - cpu0)))
	if is_cluster "$relay"; then
		R[$c,$relay,pgcpu]=$(ms_per_msg $((pg1 - pg0)))
		R[$c,$relay,rdcpu]=$(ms_per_msg $((rd1 - rd0)))
		R[$c,$relay,allcpu]=$(ms_per_msg $((cpu1 - cpu0 + pg1 - pg0 + rd1 - rd0)))
		log "  cluster: PostgreSQL ${R[$c,$relay,pgcpu]} ms/msg, Redis ${R[$c,$relay,rdcpu]} ms/msg"
	fi
	log "  $relay: relay CPU ${R[$c,$relay,cpu]} ms/msg; whole machine (load generator, sink, anything else running) $(awk -v n="$M" -v t=$((sys1 - sys0)) -v hz="$CLK_TCK" 'BEGIN{printf "%.3f", t*1000/hz/n}') ms/msg"
	R[$c,$relay,pss]=$(awk -v k="$(cat "$d/pss" 2>/dev/null || echo 0)" 'BEGIN{printf "%.1f", k/1024}')
	if is_cluster "$relay"; then
		# the highest of the nodes' peaks
		mem=$(for p in "${CL_PIDS[@]}"; do awk '/^VmHWM:/{print $2}' "/proc/$p/status"; done | sort -n | tail -1)
		R[$c,$relay,mem]=$(awk -v k="$mem" 'BEGIN{printf "%.1f", k/1024}')
	elif is_posthorn "$relay"; then
		mem=$(awk '/^VmHWM:/{print $2}' "/proc/$PH_PID/status")
		R[$c,$relay,mem]=$(awk -v k="$mem" 'BEGIN{printf "%.1f", k/1024}')
	else
		R[$c,$relay,mem]=${R[$c,$relay,pss]}
	fi

	# latency: loadgen's own run when it was the load, else a second pass
	if [ "$TOOL" = smtp-source ] && [ "$LAT" = 0 ]; then
		lg= # no latency pass (the cluster case: throughput and CPU only)
	elif [ "$TOOL" = smtp-source ]; then
		loadgen_run "$RELAY_PORT" "$N" 0 "$d/latency.txt" >"$d/lat.out" 2>"$d/lat.err" || {
			# keep what it measured (over the accepted messages) beside the failure
			lg=$(cat "$d/lat.out")
			[ -n "$lg" ] && R[$c,$relay,p50]=$(kv p50_ms "$lg") R[$c,$relay,p99]=$(kv p99_ms "$lg")
			ERR="loadgen latency pass against $relay failed: $(tail -3 "$d/lat.err" | tr '\n' ' ') $(cat "$d/lat.out"); log: $RELAY_LOG"
			return 1
		}
		wait_sink $((2 * N)) $((2 * N * RCPTS)) "the latency pass" || return 1
		lg=$(cat "$d/lat.out")
		R[$c,$relay,lat_accept]=$(printf '%.0f' "$(kv accept_per_s "$lg")")
	else
		lg=$(cat "$d/load.out")
		R[$c,$relay,tls]=$(sed -n 's/^loadgen: tls //p' "$d/load.err" | head -1)
	fi
	R[$c,$relay,p50]=$(kv p50_ms "$lg")
	R[$c,$relay,p99]=$(kv p99_ms "$lg")

	# no loss, no duplicates: the exact counts, after a moment to settle
	sleep 0.3
	sink_read
	local want=$M
	[ "$TOOL" = smtp-source ] && [ "$LAT" = 1 ] && want=$((2 * N))
	if ((SINK_M != want || SINK_R != want * RCPTS)); then
		R[$c,$relay,note]="sink got $SINK_M messages / $SINK_R recipients for $want / $((want * RCPTS)) sent"
		log "WARNING: $relay case $c: ${R[$c,$relay,note]}"
	fi
	[ -n "$DKIM_KEYS" ] && { dkim_check "$c" "$relay" "$d" "$want" || return 1; }
	return 0
}

# The DKIM case signs what it claims: the first message at the sink has
# the signatures, and Posthorn logged every message signed.
dkim_check() { # case relay dir messages
	local n_sig want=1 signed
	[[ $2 == posthorn-dual ]] && want=2
	n_sig=$(grep -c '^DKIM-Signature:' "$3/first.eml" 2>/dev/null)
	if [ "${n_sig:-0}" -ne "$want" ]; then
		ERR="$2: the first message at the sink has ${n_sig:-0} DKIM-Signature fields, not $want"
		return 1
	fi
	if is_posthorn "$2"; then
		signed=$(grep -c "event=dkim result=signed domain=bench.test signatures=$want" "$RELAY_LOG")
		((signed == $4)) || { ERR="$2: $signed messages logged signed, not $4"; return 1; }
	fi
	R[$1,$2,signed]="$n_sig in the first message"
}

# The relays of a case, each with the keys it signs with (DKIM case).
case_relays() { # case
	if [ "$1" = e ]; then
		echo "posthorn:rsa2048 postfix:rsa2048 posthorn-ed25519:ed25519 posthorn-dual:rsa2048+ed25519"
	elif [ "$1" = h ]; then
		echo "posthorn: cluster:"
	elif [ "$1" = f ] || [ "$1" = g ]; then
		echo "posthorn:"
	else
		echo "posthorn: postfix:"
	fi
}

run_case() { # case
	local c=$1 relay d spec
	case_params "$c" || { log "unknown case $c"; FAILED=1; return; }
	R[$c,title]=$TITLE
	R[$c,tool]=${TOOL/loadgen-api/bench/loadgen -A (HTTP, keep-alive)}
	for spec in $(case_relays "$c"); do
		relay=${spec%%:*}
		DKIM_KEYS=${spec#*:}
		DKIM_KEYS=${DKIM_KEYS/+/ }
		d=$WORK/$c-$relay
		mkdir -p "$d"
		log "case $c, $relay: $M messages$([ "$BATCH" -gt 1 ] && echo " in $N batches") of $SIZE bytes, $RCPTS rcpt, $SESS sessions, $TOOL$([ "$TLS" = 1 ] && echo ' STARTTLS')${DKIM_KEYS:+, DKIM $DKIM_KEYS}"
		if ! run_one "$c" "$relay" "$d"; then
			FAILED=1
			R[$c,$relay,error]=$ERR
			log "FAILED: case $c, $relay: $ERR"
			[ -f "$RELAY_LOG" ] && tail -5 "$RELAY_LOG" | sed 's/^/    /' >&2
		fi
		relay_stop
		sink_stop
		[ -n "${R[$c,$relay,error]:-}" ] && is_posthorn "$relay" && cp -f "$RELAY_LOG" "$d/posthorn.log.kept" 2>/dev/null
	done
	DKIM_KEYS=
}

# ---------- fsync count ----------
fsync_run() { # relay
	local relay=$1 d=$WORK/fsync-$1 n spid p pids=() calls
	n=1000
	[ "$SMOKE" = 1 ] && n=100
	case_params a
	mkdir -p "$d"
	ERR=
	sink_start "$d" || return 1
	relay_start "$relay" "$d" 0 || { ERR="$relay did not start"; return 1; }
	for p in $(relay_pids); do pids+=(-p "$p"); done
	strace -f -c -o "$d/strace.txt" -e trace=fsync,fdatasync,sync_file_range,syncfs,sync,msync \
		"${pids[@]}" 2>"$d/strace.err" &
	spid=$!
	PIDS+=("$spid")
	for ((p = 0; p < 100; p++)); do
		grep -q attached "$d/strace.err" 2>/dev/null && break
		sleep 0.05
	done
	sleep 0.3
	loadgen_run "$RELAY_PORT" "$n" 0 "$d/latency.txt" >"$d/load.out" 2>"$d/load.err" ||
		{ ERR="loadgen under strace failed: $(tail -2 "$d/load.err")"; kill -INT "$spid"; return 1; }
	wait_sink "$n" "$n" "the strace run" || { kill -INT "$spid"; return 1; }
	kill -INT "$spid"
	wait "$spid" 2>/dev/null
	calls=$(awk '$NF ~ /^(fsync|fdatasync|sync_file_range|syncfs|sync|msync)$/ {s += $4} END {print s+0}' "$d/strace.txt")
	R[fsync,$relay,n]=$n
	R[fsync,$relay,calls]=$calls
	R[fsync,$relay,per]=$(awk -v c="$calls" -v n="$n" 'BEGIN{printf "%.3f", c/n}')
	R[fsync,$relay,detail]=$(awk '$NF ~ /^(fsync|fdatasync|sync_file_range|syncfs|sync|msync)$/ {printf "%s%s=%s", sep, $NF, $4; sep=" "}' "$d/strace.txt")
	return 0
}

# ---------- report ----------
ms_per_msg() { awk -v n="$M" -v t="$1" -v hz="$CLK_TCK" 'BEGIN{printf "%.3f", t*1000/hz/n}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a == "" || b == "" || b + 0 == 0) print "-"; else printf "%.2f", a/b }'; }
row() { printf '  %-26s %12s %12s %12s\n' "$@"; }

report() {
	local c k label
	echo "Posthorn vs Postfix $(postconf -d -h mail_version 2>/dev/null) — $(date -u +%Y-%m-%dT%H:%MZ), commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)$(git -C "$ROOT" diff --quiet HEAD -- src 2>/dev/null || echo '+dirty src')"
	echo "machine: $(nproc) cores ($(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)), $(awk '/MemTotal/{printf "%.1f GB", $2/1048576}' /proc/meminfo) RAM, spool on $(df -P "$WORK" | awk 'NR==2{print $1}') ($(stat -f -c %T "$WORK")), kernel $(uname -r), open files limit $(ulimit -n), load average before the run $LOADAVG"
	[ "$SMOKE" = 1 ] && echo "SMOKE run: 200 messages per case"
	for c in $CASES; do
		[ -n "${R[$c,title]:-}" ] || continue
		echo
		[ "$c" = h ] && { report_cluster; continue; }
		echo "${R[$c,title]} — load: ${R[$c,tool]}$([ "${R[$c,tool]}" = smtp-source ] && echo ' -d; latency: a second pass with bench/loadgen')"
		row "" Posthorn Postfix "ratio P/F"
		for k in n:messages accept:"accept msg/s" e2e:"end-to-end msg/s" cpu:"CPU ms/msg" \
			mem:"peak memory MB" pss:"peak PSS MB (sampled)" p50:"p50 DATA->250 ms" p99:"p99 DATA->250 ms" \
			lat_accept:"accept msg/s (loadgen)"; do
			label=${k#*:}
			k=${k%%:*}
			[ "$c" = f ] && label=${label/DATA->250/POST->200}
			[ "$c" = g ] && label=${label/DATA->250/batch->200}
			[ -z "${R[$c,posthorn,$k]:-}${R[$c,postfix,$k]:-}" ] && continue
			row "$label" "${R[$c,posthorn,$k]:--}" "${R[$c,postfix,$k]:--}" \
				"$([ "$k" = n ] && echo "" || ratio "${R[$c,posthorn,$k]:-}" "${R[$c,postfix,$k]:-}")"
		done
		[ -n "${R[$c,posthorn,tls]:-}" ] && echo "  TLS negotiated: Posthorn ${R[$c,posthorn,tls]}, Postfix ${R[$c,postfix,tls]:--}"
		[ "$c" = e ] && report_dkim
		for k in posthorn postfix posthorn-ed25519 posthorn-dual; do
			[ -n "${R[$c,$k,error]:-}" ] && echo "  FAILED $k: ${R[$c,$k,error]}"
			[ -n "${R[$c,$k,note]:-}" ] && echo "  NOTE $k: ${R[$c,$k,note]}"
		done
	done
	if [ -n "${R[fsync,posthorn,per]:-}${R[fsync,postfix,per]:-}" ]; then
		echo
		echo "fsync-family calls per message (strace -f -c on the relay, ${R[fsync,posthorn,n]:-${R[fsync,postfix,n]:-}} messages as case a, accept and delivery)"
		row "" Posthorn Postfix "ratio P/F"
		row "calls per message" "${R[fsync,posthorn,per]:--}" "${R[fsync,postfix,per]:--}" "$(ratio "${R[fsync,posthorn,per]:-}" "${R[fsync,postfix,per]:-}")"
		echo "  Posthorn: ${R[fsync,posthorn,detail]:-${R[fsync,posthorn,error]:-}}"
		echo "  Postfix:  ${R[fsync,postfix,detail]:-${R[fsync,postfix,error]:-}}"
	fi
	[ "$SMOKE" = 1 ] && return
	echo
	echo "targets (issue #4):"
	target "a" e2e ge 3 "(a) end to end >= 3x Postfix"
	target "a" cpu le 0.25 "(a) CPU per message <= 1/4 of Postfix's"
	abs "a" p99 le 20 "(a) p99 end-of-DATA-to-250 <= 20 ms"
	abs "a" mem le 64 "(a) peak memory <= 64 MB"
	target "b" e2e ge 2 "(b) end to end >= 2x Postfix"
	abs "b" e2e ge 750 "(b) end to end >= 750 msg/s"
	target "c" e2e ge 3 "(c) end to end >= 3x Postfix"
	target "d" e2e ge 2 "(d) end to end >= 2x Postfix over STARTTLS"
	echo "targets (issue #10):"
	target "e" e2e ge 3 "(e) end to end >= 3x Postfix+OpenDKIM (rsa2048)"
	echo "targets (issue #11):"
	abs "f" accept ge 2000 "(f) API single POSTs >= 2,000 msg/s durably"
	abs "g" p99 le 1000 "(g) a 1,000-recipient batch answered < 1 s (p99 ms)"
	echo "targets (issue #14):"
	cl_target
}

# Case h: one node on SQLite, then three nodes sharing PostgreSQL and
# Redis, same load in all (bench/README.md says how the per-node figure
# is defined on a machine whose cores the three nodes share).
report_cluster() {
	local k label one three
	echo "${R[h,title]} — load: smtp-source -d (for the cluster, one per node, sharing the messages and sessions)"
	row "" "1 node" "3 nodes" "ratio 3/1"
	for k in n:messages accept:"accept msg/s" e2e:"end-to-end msg/s" cpu:"Posthorn CPU ms/msg" \
		pgcpu:"PostgreSQL CPU ms/msg" rdcpu:"Redis CPU ms/msg" allcpu:"CPU ms/msg, all of it" \
		mem:"peak memory MB (a node)" pss:"peak PSS MB (all nodes)"; do
		label=${k#*:}
		k=${k%%:*}
		one=${R[h,posthorn,$k]:-}
		[ "$k" = allcpu ] && one=${R[h,posthorn,cpu]:-}
		three=${R[h,cluster,$k]:-}
		row "$label" "${one:--}" "${three:--}" "$([ "$k" = n ] || ratio "$three" "$one")"
	done
	row "shared state ms/msg" "" "$(awk -v a="${R[h,cluster,pgcpu]:-}" -v b="${R[h,cluster,rdcpu]:-}" \
		'BEGIN{ if (a == "" || b == "") print "-"; else printf "%.3f", a + b }')" ""
	row "per node, by CPU" "" "$(ratio "${R[h,posthorn,cpu]:-}" "${R[h,cluster,cpu]:-}")" ""
	for k in posthorn cluster; do
		[ -n "${R[h,$k,error]:-}" ] && echo "  FAILED $k: ${R[h,$k,error]}"
		[ -n "${R[h,$k,note]:-}" ] && echo "  NOTE $k: ${R[h,$k,note]}"
	done
}

# The goal of issue 14 on this one machine: the cluster's total
# end-to-end rate over the single node's (bench/README.md, case h).
cl_target() {
	local r
	r=$(ratio "${R[h,cluster,e2e]:-}" "${R[h,posthorn,e2e]:-}")
	[ "$r" = - ] && { printf '  %-48s %s\n' "(h) a node in a cluster keeps >= 70 %" "not measured"; return; }
	printf '  %-48s %-8s %s\n' "(h) a node in a cluster keeps >= 70 %" "$r" \
		"$(awk -v r="$r" 'BEGIN{print (r >= 0.70 ? "met" : "NOT met")}')"
}
# Case e: Postfix signs with rsa2048 through OpenDKIM; Posthorn also with
# ed25519 and with both keys (dual), each against that same Postfix run.
report_dkim() {
	local k label
	echo "  keys: Posthorn rsa2048 (its column above), Postfix+OpenDKIM rsa2048; signatures: Posthorn ${R[e,posthorn,signed]:--}, Postfix ${R[e,postfix,signed]:--}"
	echo
	row "Posthorn, other keys" ed25519 "rsa+ed25519" ""
	for k in accept:"accept msg/s" e2e:"end-to-end msg/s" cpu:"CPU ms/msg" p50:"p50 DATA->250 ms" \
		p99:"p99 DATA->250 ms" mem:"peak memory MB"; do
		label=${k#*:}
		k=${k%%:*}
		row "$label" "${R[e,posthorn-ed25519,$k]:--}" "${R[e,posthorn-dual,$k]:--}" ""
	done
	row "end to end / Postfix+OpenDKIM" "$(ratio "${R[e,posthorn-ed25519,e2e]:-}" "${R[e,postfix,e2e]:-}")" \
		"$(ratio "${R[e,posthorn-dual,e2e]:-}" "${R[e,postfix,e2e]:-}")" ""
}

target() { # case key ge|le bound text
	local r
	r=$(ratio "${R[$1,posthorn,$2]:-}" "${R[$1,postfix,$2]:-}")
	[ "$r" = - ] && { printf '  %-48s %s\n' "$5" "not measured"; return; }
	printf '  %-48s %-8s %s\n' "$5" "$r" "$(awk -v r="$r" -v b="$4" -v op="$3" 'BEGIN{ok = op == "ge" ? r >= b : r <= b; print ok ? "met" : "NOT met"}')"
}
abs() { # case key ge|le bound text
	local v=${R[$1,posthorn,$2]:-}
	[ -z "$v" ] && { printf '  %-48s %s\n' "$5" "not measured"; return; }
	printf '  %-48s %-8s %s\n' "$5" "$v" "$(awk -v r="$v" -v b="$4" -v op="$3" 'BEGIN{ok = op == "ge" ? r >= b : r <= b; print ok ? "met" : "NOT met"}')"
}

# ---------- main ----------
LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg)
log "temp dir $WORK; cases: $CASES$([ "$SMOKE" = 1 ] && echo ' (smoke)')"
for c in $CASES; do run_case "$c"; done
if [ "${BENCH_FSYNC:-1}" = 1 ]; then
	for relay in posthorn postfix; do
		log "fsync count, $relay"
		if ! fsync_run "$relay"; then
			FAILED=1
			R[fsync,$relay,error]="FAILED: $ERR"
			log "FAILED: fsync run, $relay: $ERR"
		fi
		relay_stop
		sink_stop
	done
fi

report | tee "$RESULTS/latest.txt"
if [ "$FAILED" = 1 ]; then
	log "FAILED (details above; temp dir kept: $WORK)"
	exit 1
fi
exit 0
