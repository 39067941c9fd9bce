/*
 * cluster_redis: the Redis link. Contract in cluster_redis.h.
 *
 * Each command is a struct req with its own timer. hiredis calls the
 * command's callback exactly once (with the reply, or NULL when the
 * context is freed or the link breaks); that callback frees the req. A
 * timer that fires first answers the caller with NULL (req->answered) and
 * drops the link: hiredis then calls the callbacks of everything pending
 * with NULL, which answers the rest and frees every req.
 */
#include "cluster/cluster_redis.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns/dns.h"
#include "log/log.h"
#include "metrics/metrics.h"
#include "util/util.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define PING_EVERY_MS  1000

struct cluster_redis {
	struct event_base *base;
	struct dns *dns; /* NULL: hiredis resolves (blocking) */
	uint64_t dns_id; /* the lookup in flight, 0: none */
	unsigned turn;   /* which of the name's addresses to dial: the next after a failure */
	struct cluster_url url;
	redisAsyncContext *ac; /* NULL: not dialling, not connected */
	int up;
	int was_up;       /* -1 before the first outcome: the first down is logged too */
	int auth_logged;  /* a refused AUTH logged since the last up */
	int setup_logged; /* a failed setup command logged since the last up */
	unsigned backoff_ms;
	struct event *ev_redial, *ev_ping, *ev_connect;
	const char *scripts[CLUSTER_REDIS_SCRIPTS];
	int n_scripts;
	void (*on_up)(void *arg);
	void *on_up_arg;
	uint64_t ping_sent_us; /* the PING in flight, 0: none */
	int64_t ping_us;       /* the last PING's round trip, -1: none yet */
};

struct req {
	struct cluster_redis *r;
	cluster_redis_cb cb;
	void *arg;
	struct event *ev_timeout;
	int answered;
};

static void dial(struct cluster_redis *r);

static struct timeval tv_ms(unsigned ms)
{
	return (struct timeval){(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
}

/* The one place the state changes: logged once per change. */
static void set_up(struct cluster_redis *r, int up, const char *why)
{
	r->up = up;
	metrics_set(M_REDIS_UP, up);
	if (up == r->was_up)
		return;
	r->was_up = up;
	if (up)
		r->auth_logged = r->setup_logged = 0;
	if (up)
		log_info("event=redis_up host=%s port=%d db=%d", log_q(r->url.host), r->url.port,
		         r->url.db);
	else
		log_warn("event=redis_down host=%s port=%d error=%s", log_q(r->url.host),
		         r->url.port, log_q(why));
}

static void schedule_redial(struct cluster_redis *r)
{
	struct timeval tv = tv_ms(r->backoff_ms);

	r->backoff_ms = r->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : r->backoff_ms * 2;
	evtimer_add(r->ev_redial, &tv);
}

/* Drops the link (from outside hiredis' callbacks): pending commands are
 * answered NULL; a redial follows. */
static void drop(struct cluster_redis *r, const char *why)
{
	redisAsyncContext *ac = r->ac;

	if (!ac)
		return;
	r->ac = NULL;
	evtimer_del(r->ev_connect);
	set_up(r, 0, why);
	redisAsyncFree(ac); /* its callbacks see r->ac != ac: no second redial */
	schedule_redial(r);
}

static void send_ping(struct cluster_redis *r, cluster_redis_cb cb);
static void note_pong(struct cluster_redis *r, const struct redisReply *reply);

/* The first answer on a new connection (after its setup): up only now,
 * so that a Redis that accepts connections but does not answer (hung,
 * stopped) is never reported up. */
static void on_first_pong(void *arg, const struct redisReply *reply)
{
	struct cluster_redis *r = arg;

	note_pong(r, reply);
	if (!reply)
		return;                         /* timed out: the link is dropped already */
	if (reply->type == REDIS_REPLY_ERROR) { /* loading, auth required...: again later */
		drop(r, reply->str);            /* hiredis frees it once this callback returns */
		return;
	}
	r->backoff_ms = BACKOFF_MIN_MS;
	set_up(r, 1, NULL);
	if (r->on_up)
		r->on_up(r->on_up_arg);
}

static void on_connected(const redisAsyncContext *ac, int status)
{
	struct cluster_redis *r = ac->data;

	if (r->ac != ac)
		return;
	evtimer_del(r->ev_connect);
	if (status != REDIS_OK) { /* hiredis frees ac itself */
		r->ac = NULL;
		r->turn++;
		set_up(r, 0, ac->errstr[0] ? ac->errstr : "cannot connect");
		schedule_redial(r);
		return;
	}
	send_ping(r, on_first_pong);
}

static void on_disconnected(const redisAsyncContext *ac, int status)
{
	struct cluster_redis *r = ac->data;

	if (r->ac != ac)
		return; /* dropped by us: handled there */
	r->ac = NULL;
	set_up(r, 0, status == REDIS_OK ? "closed" : ac->errstr[0] ? ac->errstr : "link broken");
	schedule_redial(r);
}

static void on_connect_timeout(evutil_socket_t fd, short what, void *arg)
{
	((struct cluster_redis *)arg)->turn++;
	drop(arg, "connect timed out");
}

static void on_reply(redisAsyncContext *ac, void *reply, void *priv)
{
	struct req *q = priv;

	evtimer_del(q->ev_timeout);
	if (!q->answered)
		q->cb(q->arg, reply);
	event_free(q->ev_timeout);
	free(q);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct req *q = arg;
	struct cluster_redis *r = q->r;

	q->answered = 1;
	q->cb(q->arg, NULL);
	drop(r, "command timed out"); /* frees q, through on_reply */
}

/* A refused AUTH: logged once (Redis's words, never the password) until
 * the next up; the link is dropped and dialled again with the backoff, so
 * the node stays on its fallback. */
static void on_auth(void *arg, const struct redisReply *reply)
{
	struct cluster_redis *r = arg;

	if (!reply || reply->type != REDIS_REPLY_ERROR)
		return; /* no answer: the timeout has dropped the link already */
	if (!r->auth_logged)
		log_err("event=redis_auth_error host=%s port=%d user=%s error=%s",
		        log_q(r->url.host), r->url.port,
		        log_q(r->url.user[0] ? r->url.user : "default"), log_q(reply->str));
	r->auth_logged = 1;
	drop(r, reply->str); /* what is queued behind it is answered NULL */
}

/* AUTH [USER] PASSWORD, the first command of a connection. */
static void send_auth(struct cluster_redis *r)
{
	const char *argv[3] = {"AUTH"};
	size_t lens[3] = {4};
	int n = 1;

	if (r->url.user[0]) {
		argv[n] = r->url.user;
		lens[n++] = strlen(r->url.user);
	}
	argv[n] = r->url.password;
	lens[n++] = strlen(r->url.password);
	cluster_redis_cmd(r, on_auth, r, n, argv, lens);
}

/* The setup of a new connection: AUTH, SELECT, then the scripts. A
 * failed setup command is logged once until the next up; NOAUTH (Redis
 * wants a password the URL does not give) is a refused AUTH. */
static void ignore(void *arg, const struct redisReply *reply)
{
	struct cluster_redis *r = arg;

	if (!reply || reply->type != REDIS_REPLY_ERROR)
		return;
	if (strncmp(reply->str, "NOAUTH", 6) == 0) {
		on_auth(r, reply);
		return;
	}
	if (!r->setup_logged)
		log_warn("event=redis_setup_error error=%s", log_q(reply->str));
	r->setup_logged = 1;
}

static void setup(struct cluster_redis *r)
{
	char db[8];
	const char *argv[3];
	size_t lens[3];

	if (r->url.password[0])
		send_auth(r);
	if (r->url.db) {
		snprintf(db, sizeof(db), "%d", r->url.db);
		argv[0] = "SELECT";
		argv[1] = db;
		lens[0] = 6;
		lens[1] = strlen(db);
		cluster_redis_cmd(r, ignore, r, 2, argv, lens);
	}
	for (int i = 0; i < r->n_scripts; i++) {
		argv[0] = "SCRIPT";
		argv[1] = "LOAD";
		argv[2] = r->scripts[i];
		lens[0] = 6;
		lens[1] = 4;
		lens[2] = strlen(r->scripts[i]);
		cluster_redis_cmd(r, ignore, r, 3, argv, lens);
	}
}

/* Connects to addr (numeric, or the host name when there is no dns). */
static void dial_addr(struct cluster_redis *r, const char *addr)
{
	struct timeval tv = tv_ms(CLUSTER_REDIS_TIMEOUT_MS * 2);
	redisAsyncContext *ac = redisAsyncConnect(addr, r->url.port);

	if (!ac || ac->err) {
		set_up(r, 0, ac ? ac->errstr : "out of memory");
		if (ac)
			redisAsyncFree(ac);
		schedule_redial(r);
		return;
	}
	ac->data = r;
	r->ac = ac;
	redisLibeventAttach(ac, r->base);
	redisAsyncSetConnectCallback(ac, on_connected);
	redisAsyncSetDisconnectCallback(ac, on_disconnected);
	evtimer_add(r->ev_connect, &tv);
	setup(r); /* queued: written once connected */
}

static void on_resolved(void *arg, const struct dns_route *rt)
{
	struct cluster_redis *r = arg;
	char addr[DNS_ADDR_STRLEN];

	r->dns_id = 0;
	if (rt->status == DNS_CANCELLED)
		return; /* shutting down */
	if (rt->status != DNS_OK || !rt->n_hosts || !rt->hosts[0].n_addrs) {
		set_up(r, 0,
		       rt->status == DNS_TEMPFAIL && rt->error
		           ? rt->error
		           : "the host name has no address (A or AAAA)");
		schedule_redial(r);
		return;
	}
	/* each address in turn, one per dial, until one answers */
	dial_addr(r, dns_addr_str(&rt->hosts[0].addrs[r->turn % rt->hosts[0].n_addrs], addr));
}

static int numeric(const char *host)
{
	unsigned char buf[16];

	return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

/* An address at once; a name from the hosts file (localhost, a name the
 * operator pinned there), else through the resolver on the loop. */
static void dial(struct cluster_redis *r)
{
	char addr[DNS_ADDR_STRLEN];

	if (!r->dns || numeric(r->url.host))
		dial_addr(r, r->url.host);
	else if (dns_hosts_file(r->dns, r->url.host, addr, sizeof(addr)) == 0)
		dial_addr(r, addr);
	else
		r->dns_id = dns_host(r->dns, r->url.host, on_resolved, r);
}

static void on_redial(evutil_socket_t fd, short what, void *arg)
{
	dial(arg);
}

/* The round trip of the PING answered now (not of an error or a timeout). */
static void note_pong(struct cluster_redis *r, const struct redisReply *reply)
{
	if (reply && reply->type != REDIS_REPLY_ERROR && r->ping_sent_us)
		r->ping_us = (int64_t)(clock_mono_us() - r->ping_sent_us);
	r->ping_sent_us = 0;
}

static void on_pong(void *arg, const struct redisReply *reply)
{
	note_pong(arg, reply); /* no answer: the timeout has dropped the link already */
}

static void send_ping(struct cluster_redis *r, cluster_redis_cb cb)
{
	const char *argv[] = {"PING"};
	size_t lens[] = {4};

	r->ping_sent_us = clock_mono_us();
	if (cluster_redis_cmd(r, cb, r, 1, argv, lens) < 0)
		r->ping_sent_us = 0;
}

static void on_ping(evutil_socket_t fd, short what, void *arg)
{
	struct cluster_redis *r = arg;

	if (r->up)
		send_ping(r, on_pong);
}

void cluster_redis_set_dns(struct cluster_redis *r, struct dns *dns)
{
	if (r)
		r->dns = dns;
}

struct cluster_redis *cluster_redis_new(struct event_base *base, const struct cluster_url *u)
{
	struct cluster_redis *r = xcalloc(1, sizeof(*r));
	struct timeval ping = tv_ms(PING_EVERY_MS), now = {0, 0};

	r->base = base;
	r->url = *u;
	r->was_up = -1;
	r->ping_us = -1;
	r->backoff_ms = BACKOFF_MIN_MS;
	r->ev_redial = evtimer_new(base, on_redial, r);
	r->ev_connect = evtimer_new(base, on_connect_timeout, r);
	r->ev_ping = event_new(base, -1, EV_PERSIST, on_ping, r);
	event_add(r->ev_ping, &ping);
	metrics_set(M_REDIS_UP, 0);
	/* the first dial from the loop: scripts are added before it runs */
	evtimer_add(r->ev_redial, &now);
	return r;
}

void cluster_redis_free(struct cluster_redis *r)
{
	redisAsyncContext *ac;

	if (!r)
		return;
	if (r->dns_id)
		dns_cancel(r->dns, r->dns_id);
	ac = r->ac;
	r->ac = NULL;
	r->up = 0; /* what is answered now is decided without Redis */
	if (ac)
		redisAsyncFree(ac);
	event_free(r->ev_redial);
	event_free(r->ev_connect);
	event_free(r->ev_ping);
	free(r);
}

int64_t cluster_redis_ping_us(const struct cluster_redis *r)
{
	return r && r->up ? r->ping_us : -1;
}

int cluster_redis_up(const struct cluster_redis *r)
{
	return r && r->up;
}

int cluster_redis_cmd(struct cluster_redis *r, cluster_redis_cb cb, void *arg, int argc,
                      const char **argv, const size_t *lens)
{
	struct req *q;
	struct timeval tv = tv_ms(CLUSTER_REDIS_TIMEOUT_MS);

	if (!r->ac)
		return -1;
	q = xcalloc(1, sizeof(*q));
	q->r = r;
	q->cb = cb;
	q->arg = arg;
	q->ev_timeout = evtimer_new(r->base, on_timeout, q);
	if (redisAsyncCommandArgv(r->ac, on_reply, q, argc, argv, lens) != REDIS_OK) {
		event_free(q->ev_timeout);
		free(q);
		return -1;
	}
	evtimer_add(q->ev_timeout, &tv);
	return 0;
}

void cluster_redis_add_script(struct cluster_redis *r, const char *lua)
{
	if (r->n_scripts < CLUSTER_REDIS_SCRIPTS)
		r->scripts[r->n_scripts++] = lua;
}

void cluster_redis_on_up(struct cluster_redis *r, void (*fn)(void *arg), void *arg)
{
	r->on_up = fn;
	r->on_up_arg = arg;
}

void cluster_redis_sha1(const char *lua, char out[CLUSTER_SHA_HEX])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned n = 0;

	out[0] = '\0';
	EVP_Digest(lua, strlen(lua), md, &n, EVP_sha1(), NULL);
	for (unsigned i = 0; i < n && i < 20; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

int cluster_redis_pair(const struct redisReply *rep, const char *what, long long *a, long long *b)
{
	int ok = rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
	         rep->element[0]->type == REDIS_REPLY_INTEGER &&
	         rep->element[1]->type == REDIS_REPLY_INTEGER;

	if (rep && !ok)
		log_warn("event=redis_script_error what=%s error=%s", what,
		         log_q(rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply"));
	*a = ok ? rep->element[0]->integer : 0;
	*b = ok ? rep->element[1]->integer : 0;
	return ok;
}

#define EVAL_ARGS_MAX CLUSTER_EVAL_ARGS_MAX

int cluster_redis_evalsha(struct cluster_redis *r, const char *sha, int n_keys,
                          const char *const *strs, int n, cluster_redis_cb cb, void *arg)
{
	const char *argv[EVAL_ARGS_MAX + 3];
	size_t lens[EVAL_ARGS_MAX + 3];
	char nk[12];

	if (n > EVAL_ARGS_MAX)
		return -1;
	snprintf(nk, sizeof(nk), "%d", n_keys);
	argv[0] = "EVALSHA";
	argv[1] = sha;
	argv[2] = nk;
	for (int i = 0; i < n; i++)
		argv[3 + i] = strs[i];
	for (int i = 0; i < n + 3; i++)
		lens[i] = strlen(argv[i]);
	return cluster_redis_cmd(r, cb, arg, n + 3, argv, lens);
}
