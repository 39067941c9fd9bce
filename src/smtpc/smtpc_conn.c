/*
 * smtpc_conn: the outbound SMTP client state machine over a bufferevent.
 * Replies come from the PURE parser (smtpc_reply.c); what a reply or a
 * failure means comes from the PURE policy (smtpc_policy.c). This file
 * only moves bytes and steps states; the way to READY (source address,
 * EHLO, STARTTLS under the TLS policy, AUTH) is smtpc_hello.c.
 *
 * Lifetime: a connection is freed from a deferred event after its failed()
 * or closed() callback has run, never inside a libevent callback of its
 * own bufferevent.
 */
#include "metrics/metrics.h"
#include "smtpc/smtpc_conn.h"
#include "smtpc/smtpc_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <unistd.h>

#include "log/log.h"
#include "smtpc/smtpc_reply.h"
#include "spool/spool.h"
#include "tls/tls.h"
#include "util/util.h"

#define CONNECT_TIMEOUT_S 30
#define REPLY_TIMEOUT_S   300 /* RFC 5321 4.5.3.2: 5 minutes for most replies */
#define QUIT_TIMEOUT_S    3   /* after QUIT: the peer answers or closes by then */
#define DOT_TIMEOUT_S     600 /* 10 minutes for the reply to the final dot */
#define BODY_CHUNK        (64 * 1024)
#define OUT_HIGH          (256 * 1024) /* stop reading the body while this much waits */
#define MAX_ADDR_TRIES    10           /* addresses tried in one connection attempt */

static const char *cstate_names[C__COUNT] = {"connecting", "greeting", "ehlo",  "helo", "starttls",
                                             "tls",        "auth",     "ready", "txn",  "data",
                                             "body",       "dot",      "rset",  "quit", "dead"};

/* Every connection not yet freed, so that the last ones (saying QUIT when
 * the loop stops) can be freed at exit: see smtpc_conn_free_all(). */
static LIST_HEAD(, smtpc_conn) all_conns = LIST_HEAD_INITIALIZER(all_conns);

static void try_address(struct smtpc_conn *c);
static void on_read(struct bufferevent *bev, void *arg);
static void on_write(struct bufferevent *bev, void *arg);
static void on_event(struct bufferevent *bev, short what, void *arg);

/* ---------- small helpers ---------- */

void smtpc_set_state(struct smtpc_conn *c, enum cstate st)
{
	struct timeval tv = {REPLY_TIMEOUT_S, 0};

	log_debug("conn=%s dest=%s event=smtpc_state host=%s from=%s to=%s", c->id, c->dest,
	          c->host, cstate_names[c->state], cstate_names[st]);
	c->state = st;
	if (st == C_DOT)
		tv.tv_sec = DOT_TIMEOUT_S;
	else if (st == C_QUIT)
		tv.tv_sec = QUIT_TIMEOUT_S;
	/* While the body streams nothing is read: only writes must progress. */
	if (c->bev && st == C_BODY)
		bufferevent_set_timeouts(c->bev, NULL, &tv);
	else if (c->bev && st != C_CONNECTING)
		bufferevent_set_timeouts(c->bev, &tv, &tv);
}

void smtpc_send_line(struct smtpc_conn *c, const char *fmt, ...)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	va_list ap;

	va_start(ap, fmt);
	evbuffer_add_vprintf(out, fmt, ap);
	va_end(ap);
	evbuffer_add(out, "\r\n", 2);
}

static void on_free(evutil_socket_t fd, short what, void *arg)
{
	struct smtpc_conn *c = arg;

	LIST_REMOVE(c, all);
	if (c->bev)
		bufferevent_free(c->bev);
	if (c->gone)
		c->gone(c->gone_arg);
	smtpc_rparser_free(&c->rp);
	smtpc_verdict_clear(&c->last);
	dns_route_free(c->route);
	tls_dest_pol_unref(c->t.pol);
	event_free(c->ev_free);
	event_free(c->ev_refused);
	free(c->dest);
	free(c->helo);
	free(c->auth);
	free(c);
}

static void free_later(struct smtpc_conn *c)
{
	if (c->freeing)
		return;
	c->freeing = 1;
	c->state = C_DEAD;
	event_del(c->ev_refused);
	if (c->bev)
		bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	event_active(c->ev_free, EV_TIMEOUT, 0);
}

static void drop_socket(struct smtpc_conn *c)
{
	if (c->bev)
		bufferevent_free(c->bev); /* frees the SSL too */
	c->bev = NULL;
	c->fd = -1;
	c->ssl = NULL;
	c->tls_active = 0;
	c->verified = 0;
	smtpc_rparser_free(&c->rp);
	smtpc_rparser_init(&c->rp);
}

/* ---------- the job's results ---------- */

static void job_finish(struct smtpc_conn *c)
{
	smtpc_done_fn done = c->done;
	size_t i, n = c->job.n_rcpts;

	c->done = NULL;
	if (done)
		done(c->done_arg, c->v, n);
	for (i = 0; i < n; i++)
		smtpc_verdict_clear(&c->v[i]);
	free(c->v);
	free(c->accepted);
	c->v = NULL;
	c->accepted = NULL;
	memset(&c->job, 0, sizeof(c->job));
}

static void verdict_copy(struct smtpc_verdict *dst, const struct smtpc_verdict *src)
{
	smtpc_verdict_clear(dst);
	*dst = *src;
	dst->diag = src->diag ? xstrdup(src->diag) : NULL;
	dst->reply = src->reply ? xstrdup(src->reply) : NULL;
}

/* Every recipient not yet final gets v (accepted ones too: no end of data). */
static void job_fail_open(struct smtpc_conn *c, const struct smtpc_verdict *v, int only_accepted)
{
	size_t i;

	for (i = 0; i < c->job.n_rcpts; i++) {
		if (only_accepted && !c->accepted[i])
			continue;
		if (!only_accepted && c->v[i].diag && !c->accepted[i])
			continue; /* already refused at RCPT: keep that verdict */
		verdict_copy(&c->v[i], v);
	}
}

/* ---------- connection-level failure ---------- */

/* This address is done. Before READY: try the next one. In a transaction:
 * the open recipients take the verdict, then the connection closes. */
void smtpc_session_failed(struct smtpc_conn *c, struct smtpc_verdict *v)
{
	int was_ready = c->ever_ready;

	if (c->quitting || c->freeing) {
		/* the owner has let go: nobody to tell */
		smtpc_verdict_clear(v);
		drop_socket(c);
		free_later(c);
		return;
	}
	log_info(
	    "conn=%s dest=%s event=smtpc_fail host=%s addr=%s port=%u state=%s status=%s reply=%s",
	    c->id, c->dest, c->host, c->addr, (unsigned)c->t.port, cstate_names[c->state],
	    v->status, log_q(v->diag));
	if (c->done) {
		job_fail_open(c, v, 0);
		job_finish(c);
	}
	smtpc_verdict_clear(&c->last);
	c->last = *v;
	memset(v, 0, sizeof(*v));
	drop_socket(c);
	if (was_ready) {
		c->cbs.closed(c->arg, c);
		free_later(c);
		return;
	}
	if (c->last.plain_ok && !smtpc_tls_required(c) && !c->no_tls) {
		c->no_tls = 1; /* same address once more, without STARTTLS */
		try_address(c);
		return;
	}
	c->no_tls = 0;
	c->addr_i++;
	try_address(c);
}

void smtpc_fail_with(struct smtpc_conn *c, enum smtpc_failure f, const char *detail)
{
	struct smtpc_verdict v;
	enum smtpc_stage stage = c->state == C_CONNECTING ? SMTPC_STAGE_CONNECT
	                         : c->state == C_GREETING ? SMTPC_STAGE_GREETING
	                         : c->state == C_TLS      ? SMTPC_STAGE_TLS
	                         : c->state == C_DOT      ? SMTPC_STAGE_DOT
	                                                  : SMTPC_STAGE_MAIL;

	memset(&v, 0, sizeof(v));
	smtpc_judge_failure(&c->peer, stage, f, detail, &v);
	smtpc_session_failed(c, &v);
}

/* ---------- walking the route ---------- */

static int next_address(struct smtpc_conn *c, struct sockaddr_storage *ss, socklen_t *len)
{
	const struct dns_route *r = c->route;

	while (c->host_i < r->n_hosts) {
		const struct dns_route_host *h = &r->hosts[c->host_i];
		snprintf(c->host, sizeof(c->host), "%s", h->name);
		if (c->addr_i == 0 && h->n_addrs && smtpc_host_refused(c)) {
			c->host_i++; /* its policy refuses it: never connected to */
			continue;
		}
		if (c->addr_i < h->n_addrs) {
			const struct dns_addr *a = &h->addrs[c->addr_i];
			memset(ss, 0, sizeof(*ss));
			if (a->family == AF_INET6) {
				struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
				s6->sin6_family = AF_INET6;
				s6->sin6_port = htons(c->t.port);
				memcpy(&s6->sin6_addr, a->addr, 16);
				*len = sizeof(*s6);
			} else {
				struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
				s4->sin_family = AF_INET;
				s4->sin_port = htons(c->t.port);
				memcpy(&s4->sin_addr, a->addr, 4);
				*len = sizeof(*s4);
			}
			dns_addr_str(a, c->addr);
			return 0;
		}
		c->host_i++;
		c->addr_i = 0;
	}
	return -1;
}

static void all_failed(struct smtpc_conn *c)
{
	if (!c->last.diag) {
		smtpc_judge_failure(&c->peer, SMTPC_STAGE_CONNECT, SMTPC_FAIL_DNS_NOHOST,
		                    "no address to connect to", &c->last);
	}
	c->cbs.failed(c->arg, c, &c->last);
	free_later(c);
}

void smtpc_setcb(struct smtpc_conn *c)
{
	bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
}

static void try_address(struct smtpc_conn *c)
{
	struct sockaddr_storage ss;
	socklen_t len;
	struct timeval tv = {CONNECT_TIMEOUT_S, 0};
	const char *why = NULL;
	int fd;

	if (c->tries >= MAX_ADDR_TRIES || next_address(c, &ss, &len) < 0) {
		all_failed(c);
		return;
	}
	c->tries++;
	c->peer.host = c->host;
	c->peer.addr = c->addr;
	c->peer.port = c->t.port;
	c->state = C_CONNECTING;
	if ((fd = smtpc_socket(c, (struct sockaddr *)&ss, &why)) < 0) {
		smtpc_fail_with(c, SMTPC_FAIL_CONNECT, why);
		return;
	}
	c->bev =
	    bufferevent_socket_new(c->base, fd, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	smtpc_setcb(c);
	bufferevent_set_timeouts(c->bev, &tv, &tv);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&ss, (int)len) < 0)
		smtpc_fail_with(c, SMTPC_FAIL_CONNECT, strerror(errno));
}

/* Judge r at stage; on anything but OK the session is over. Returns 0 if OK. */
static int expect_ok(struct smtpc_conn *c, enum smtpc_stage stage, const struct smtpc_reply *r)
{
	struct smtpc_verdict v;

	memset(&v, 0, sizeof(v));
	smtpc_judge_reply(&c->peer, stage, r, &v);
	if (v.action == SMTPC_ACT_OK) {
		smtpc_verdict_clear(&v);
		return 0;
	}
	smtpc_session_failed(c, &v);
	return -1;
}

static void on_hello_reply(struct smtpc_conn *c, const struct smtpc_reply *r)
{
	if (c->state == C_EHLO && r->code >= 500 && r->code < 600 && r->code != 554) {
		smtpc_send_line(c, "HELO %s", c->helo_now); /* an old server: fall back */
		smtpc_set_state(c, C_HELO);
		return;
	}
	if (expect_ok(c, c->state == C_EHLO ? SMTPC_STAGE_EHLO : SMTPC_STAGE_HELO, r) < 0)
		return;
	if (c->state == C_EHLO)
		smtpc_caps_parse(r, &c->caps);
	else
		memset(&c->caps, 0, sizeof(c->caps));
	smtpc_after_hello(c);
}

/* ---------- transactions ---------- */

static const char *notify_text(unsigned n, char *buf, size_t cap)
{
	if (n & DSN_NOTIFY_NEVER)
		return "NEVER";
	snprintf(buf, cap, "%s%s%s%s%s", (n & DSN_NOTIFY_SUCCESS) ? "SUCCESS" : "",
	         (n & DSN_NOTIFY_SUCCESS) && (n & (DSN_NOTIFY_FAILURE | DSN_NOTIFY_DELAY)) ? ","
	                                                                                   : "",
	         (n & DSN_NOTIFY_FAILURE) ? "FAILURE" : "",
	         (n & DSN_NOTIFY_FAILURE) && (n & DSN_NOTIFY_DELAY) ? "," : "",
	         (n & DSN_NOTIFY_DELAY) ? "DELAY" : "");
	return buf;
}

/* xtext (RFC 3461 4): '+', '=' and bytes outside 33..126 as +XX. */
static void add_xtext(struct evbuffer *out, const char *s)
{
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch < 33 || ch > 126 || ch == '+' || ch == '=')
			evbuffer_add_printf(out, "+%02X", ch);
		else
			evbuffer_add(out, s, 1);
	}
}

static void send_mail(struct smtpc_conn *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	const struct smtpc_job *j = &c->job;

	evbuffer_add_printf(out, "MAIL FROM:<%s>", j->mail_from);
	if (c->caps.size)
		evbuffer_add_printf(out, " SIZE=%llu", (unsigned long long)j->len);
	if (j->eightbit && c->caps.eightbitmime)
		evbuffer_add_printf(out, " BODY=8BITMIME");
	if (j->smtputf8 && c->caps.smtputf8)
		evbuffer_add_printf(out, " SMTPUTF8");
	if (j->requiretls && c->caps.requiretls)
		evbuffer_add_printf(out, " REQUIRETLS"); /* RFC 8689 4.2.1: passed on */
	if (c->caps.dsn && j->ret)
		evbuffer_add_printf(out, " RET=%s", j->ret == DSN_RET_FULL ? "FULL" : "HDRS");
	if (c->caps.dsn && j->envid) {
		evbuffer_add_printf(out, " ENVID=");
		add_xtext(out, j->envid);
	}
	evbuffer_add(out, "\r\n", 2);
}

static void send_rcpt(struct smtpc_conn *c, size_t i)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	const struct smtpc_job_rcpt *r = &c->job.rcpts[i];
	char nb[40];

	evbuffer_add_printf(out, "RCPT TO:<%s>", r->addr);
	if (c->caps.dsn && r->notify)
		evbuffer_add_printf(out, " NOTIFY=%s", notify_text(r->notify, nb, sizeof(nb)));
	if (c->caps.dsn && r->orcpt) {
		const char *semi = strchr(r->orcpt, ';');
		if (semi) {
			evbuffer_add_printf(out, " ORCPT=%.*s;", (int)(semi - r->orcpt), r->orcpt);
			add_xtext(out, semi + 1);
		}
	}
	evbuffer_add(out, "\r\n", 2);
}

/* Sends what may go now: everything at once with PIPELINING (RFC 2920),
 * else the next command only. */
static void txn_send_more(struct smtpc_conn *c)
{
	size_t total = c->job.n_rcpts + 1;

	do {
		if (c->sent_i == 0)
			send_mail(c);
		else
			send_rcpt(c, c->sent_i - 1);
		c->sent_i++;
	} while (c->caps.pipelining && c->sent_i < total);
}

void smtpc_conn_send(struct smtpc_conn *c, const struct smtpc_job *job, smtpc_done_fn done,
                     void *arg)
{
	struct smtpc_msg_needs needs = {job->len, job->eightbit, job->smtputf8, job->requiretls};
	struct smtpc_verdict v;
	size_t i;

	c->job = *job;
	c->done = done;
	c->done_arg = arg;
	c->v = xcalloc(job->n_rcpts ? job->n_rcpts : 1, sizeof(*c->v));
	c->accepted = xcalloc(job->n_rcpts ? job->n_rcpts : 1, sizeof(int));
	c->n_accepted = 0;
	c->reply_i = c->sent_i = 0;
	c->mail_ok = 0;
	memset(&v, 0, sizeof(v));
	if (smtpc_judge_message(&c->peer, &c->caps, &needs, c->tls_active && c->verified, &v) < 0) {
		for (i = 0; i < job->n_rcpts; i++)
			verdict_copy(&c->v[i], &v);
		smtpc_verdict_clear(&v);
		/* nothing was sent: report from the loop, not from inside this call */
		event_active(c->ev_refused, EV_TIMEOUT, 0);
		return;
	}
	smtpc_set_state(c, C_TXN);
	txn_send_more(c);
}

static void on_refused(evutil_socket_t fd, short what, void *arg)
{
	struct smtpc_conn *c = arg;

	if (c->freeing || c->quitting || !c->done)
		return; /* the session failed meanwhile and reported the job */
	job_finish(c);
	c->cbs.ready(c->arg, c);
}

static void send_rset(struct smtpc_conn *c)
{
	smtpc_send_line(c, "RSET");
	smtpc_set_state(c, C_RSET);
}

/* Appends in[0..n) with a dot doubled at the start of each line (RFC 5321
 * 4.5.2), in runs between the lines that need it. c->body_bol carries the
 * line start across chunks. */
static void stuff_dots(struct smtpc_conn *c, struct evbuffer *out, const char *in, size_t n)
{
	const char *p = in, *end = in + n, *run = in;

	while (p < end) {
		const char *nl;
		if (c->body_bol && *p == '.') {
			evbuffer_add(out, run, (size_t)(p - run));
			evbuffer_add(out, ".", 1);
			run = p; /* the original dot follows the added one */
		}
		nl = memchr(p, '\n', (size_t)(end - p));
		c->body_bol = nl != NULL;
		p = nl ? nl + 1 : end;
	}
	evbuffer_add(out, run, (size_t)(end - run));
}

/* Content out, dot-stuffed (RFC 5321 4.5.2), in bounded chunks: stop when
 * the output holds OUT_HIGH bytes; on_write calls again as it drains. */
static void body_pump(struct smtpc_conn *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	char in[BODY_CHUNK];

	while (c->body_done < c->job.len && evbuffer_get_length(out) < OUT_HIGH) {
		uint64_t left = c->job.len - c->body_done;
		size_t want = left < sizeof(in) ? (size_t)left : sizeof(in);
		ssize_t n = pread(c->job.fd, in, want, (off_t)(c->job.offset + c->body_done));

		if (n <= 0) {
			smtpc_fail_with(c, SMTPC_FAIL_LOST, "cannot read the queued message");
			return;
		}
		stuff_dots(c, out, in, (size_t)n);
		c->body_done += (uint64_t)n;
	}
	if (c->body_done < c->job.len)
		return;
	if (!c->body_bol)
		evbuffer_add(out, "\r\n", 2);
	evbuffer_add(out, ".\r\n", 3);
	smtpc_set_state(c, C_DOT);
}

static void on_txn_reply(struct smtpc_conn *c, const struct smtpc_reply *r)
{
	size_t k = c->reply_i++, total = c->job.n_rcpts + 1, i;
	struct smtpc_verdict v;

	memset(&v, 0, sizeof(v));
	smtpc_judge_reply(&c->peer, k == 0 ? SMTPC_STAGE_MAIL : SMTPC_STAGE_RCPT, r, &v);
	if (v.scope == SMTPC_SCOPE_SESSION && v.action != SMTPC_ACT_OK) {
		smtpc_session_failed(c, &v);
		return;
	}
	if (k == 0) {
		c->mail_ok = v.action == SMTPC_ACT_OK;
		if (!c->mail_ok) {
			for (i = 0; i < c->job.n_rcpts; i++)
				verdict_copy(&c->v[i], &v);
		}
	} else if (c->mail_ok) {
		c->accepted[k - 1] = v.action == SMTPC_ACT_OK;
		c->n_accepted += c->accepted[k - 1];
		verdict_copy(&c->v[k - 1], &v);
	}
	smtpc_verdict_clear(&v);
	if (!c->caps.pipelining && c->mail_ok && c->sent_i < total) {
		txn_send_more(c);
		return;
	}
	if (c->reply_i < c->sent_i)
		return; /* more pipelined replies to come */
	if (!c->mail_ok || c->n_accepted == 0) {
		job_finish(c);
		send_rset(c);
		return;
	}
	smtpc_send_line(c, "DATA");
	smtpc_set_state(c, C_DATA);
}

static void on_data_reply(struct smtpc_conn *c, const struct smtpc_reply *r)
{
	struct smtpc_verdict v;

	memset(&v, 0, sizeof(v));
	smtpc_judge_reply(&c->peer, SMTPC_STAGE_DATA, r, &v);
	if (v.scope == SMTPC_SCOPE_SESSION && v.action != SMTPC_ACT_OK) {
		smtpc_session_failed(c, &v);
		return;
	}
	if (r->code != 354) {
		job_fail_open(c, &v, 1);
		smtpc_verdict_clear(&v);
		job_finish(c);
		send_rset(c);
		return;
	}
	smtpc_verdict_clear(&v);
	c->body_done = 0;
	c->body_bol = 1;
	smtpc_set_state(c, C_BODY);
	body_pump(c);
}

static void on_dot_reply(struct smtpc_conn *c, const struct smtpc_reply *r)
{
	struct smtpc_verdict v;

	memset(&v, 0, sizeof(v));
	smtpc_judge_reply(&c->peer, SMTPC_STAGE_DOT, r, &v);
	if (v.scope == SMTPC_SCOPE_SESSION && v.action != SMTPC_ACT_OK) {
		smtpc_session_failed(c, &v);
		return;
	}
	job_fail_open(c, &v, 1);
	smtpc_verdict_clear(&v);
	c->n_sent++;
	job_finish(c);
	smtpc_set_state(c, C_READY);
	c->cbs.ready(c->arg, c);
}

/* ---------- reply dispatch ---------- */

static void on_reply(struct smtpc_conn *c, const struct smtpc_reply *r)
{
	switch (c->state) {
	case C_GREETING:
		if (expect_ok(c, SMTPC_STAGE_GREETING, r) == 0)
			smtpc_send_ehlo(c);
		break;
	case C_EHLO:
	case C_HELO:
		on_hello_reply(c, r);
		break;
	case C_STARTTLS:
		if (r->code == 220)
			smtpc_start_tls(c);
		else if (expect_ok(c, SMTPC_STAGE_STARTTLS, r) == 0)
			smtpc_fail_with(c, SMTPC_FAIL_TLS, "unexpected reply to STARTTLS");
		break;
	case C_AUTH:
		if (expect_ok(c, SMTPC_STAGE_AUTH, r) == 0)
			smtpc_become_ready(c);
		break;
	case C_TXN:
		on_txn_reply(c, r);
		break;
	case C_DATA:
		on_data_reply(c, r);
		break;
	case C_DOT:
		on_dot_reply(c, r);
		break;
	case C_RSET:
		if (expect_ok(c, SMTPC_STAGE_RSET, r) == 0) {
			smtpc_set_state(c, C_READY);
			c->cbs.ready(c->arg, c);
		}
		break;
	case C_QUIT:
		break;
	default:
		/* A reply nobody asked for (e.g. while READY): the stream is out
		 * of step, so this connection cannot be trusted any more. */
		smtpc_fail_with(c, SMTPC_FAIL_PROTOCOL, "unexpected reply");
	}
}

static void on_read(struct bufferevent *bev, void *arg)
{
	struct smtpc_conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	/* The peer answered QUIT: its session is over there, so close ours
	 * (waiting for its close could wait on a TLS peer that waits for ours). */
	if (c->state == C_QUIT && c->bev == bev && evbuffer_get_length(in) > 0) {
		free_later(c);
		return;
	}
	while (c->state != C_DEAD && !c->quitting && c->bev == bev && evbuffer_get_length(in) > 0) {
		size_t len = evbuffer_get_length(in), used;
		const unsigned char *p = evbuffer_pullup(in, (ev_ssize_t)(len < 8192 ? len : 8192));
		struct smtpc_reply r;
		enum smtpc_rstatus st;

		memset(&r, 0, sizeof(r));
		used = smtpc_rparser_feed(&c->rp, p, len < 8192 ? len : 8192, &r, &st);
		evbuffer_drain(in, used);
		if (st == SMTPC_R_ERROR) {
			smtpc_fail_with(c, SMTPC_FAIL_PROTOCOL, smtpc_rparser_error(&c->rp));
			return;
		}
		if (st == SMTPC_R_REPLY) {
			on_reply(c, &r);
			smtpc_reply_clear(&r);
		}
	}
}

static void on_write(struct bufferevent *bev, void *arg)
{
	struct smtpc_conn *c = arg;

	if (c->state == C_BODY)
		body_pump(c);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct smtpc_conn *c = arg;

	if (what & BEV_EVENT_CONNECTED) {
		if (c->state == C_CONNECTING) {
			/* Small commands and the last segment of a body must not wait
			 * for the peer's delayed ACK (Nagle). */
			int one = 1;
			setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one,
			           sizeof(one));
			metrics_inc_l(M_SMTP_SESSIONS, MD_OUTBOUND);
			smtpc_set_state(c, C_GREETING);
		} else if (c->state == C_TLS) {
			smtpc_tls_established(c);
		}
		return;
	}
	if (c->state == C_QUIT) {
		free_later(c);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		smtpc_fail_with(c, SMTPC_FAIL_TIMEOUT, "timeout");
	} else if (c->state == C_TLS ||
	           (what & BEV_EVENT_ERROR && bufferevent_get_openssl_error(bev))) {
		char text[200] = "TLS handshake failed";
		unsigned long e = bufferevent_get_openssl_error(bev);
		if (e)
			ERR_error_string_n(e, text, sizeof(text));
		if (c->state == C_TLS)
			smtpc_tls_failed(c, text);
		else
			smtpc_fail_with(c, SMTPC_FAIL_TLS, text);
	} else if (c->state == C_CONNECTING) {
		int e = EVUTIL_SOCKET_ERROR();
		smtpc_fail_with(c, SMTPC_FAIL_CONNECT,
		                e ? evutil_socket_error_to_string(e) : "connect failed");
	} else {
		smtpc_fail_with(c, SMTPC_FAIL_LOST, "lost connection");
	}
}

/* ---------- public ---------- */

struct smtpc_conn *smtpc_conn_new(struct event_base *base, const struct smtpc_target *t,
                                  const struct smtpc_cbs *cbs, void *arg)
{
	struct smtpc_conn *c = xcalloc(1, sizeof(*c));

	c->base = base;
	id_new(c->id);
	c->t = *t;
	c->route = t->route;
	c->dest = xstrdup(t->dest);
	c->helo = xstrdup(t->helo);
	c->auth = t->auth && strchr(t->auth, ':') ? xstrdup(t->auth) : NULL;
	c->t.dest = c->dest;
	c->t.helo = c->helo;
	c->t.auth = c->auth;
	c->t.pol = tls_dest_pol_ref(t->pol);
	c->helo_now = c->helo;
	c->fd = -1;
	c->cbs = *cbs;
	c->arg = arg;
	c->ev_free = event_new(base, -1, 0, on_free, c);
	c->ev_refused = event_new(base, -1, 0, on_refused, c);
	LIST_INSERT_HEAD(&all_conns, c, all);
	c->peer.host = c->dest;
	smtpc_rparser_init(&c->rp);
	try_address(c);
	return c;
}

/* After QUIT: the peer's reply (on_read) or its close (on_event) ends it. */
void smtpc_conn_quit_then(struct smtpc_conn *c, void (*gone)(void *arg), void *arg)
{
	c->gone = gone;
	c->gone_arg = arg;
	smtpc_conn_quit(c);
}

void smtpc_conn_quit(struct smtpc_conn *c)
{
	if (c->state == C_DEAD || c->state == C_QUIT)
		return;
	c->quitting = 1;
	if (c->state != C_READY || !c->bev) {
		drop_socket(c);
		free_later(c);
		return;
	}
	smtpc_send_line(c, "QUIT");
	smtpc_set_state(c, C_QUIT);
}

const char *smtpc_conn_host(const struct smtpc_conn *c)
{
	return c->host;
}

const char *smtpc_conn_addr(const struct smtpc_conn *c)
{
	return c->addr;
}

uint16_t smtpc_conn_port(const struct smtpc_conn *c)
{
	return c->t.port;
}

int smtpc_conn_verified(const struct smtpc_conn *c)
{
	return c->tls_active && c->verified;
}

const char *smtpc_conn_policy(const struct smtpc_conn *c)
{
	const struct tls_host_pol *h = smtpc_host_pol(c);

	return tls_pol_name(h ? h->pol : TLS_POL_NONE);
}

const char *smtpc_conn_src(const struct smtpc_conn *c)
{
	return c->src[0] ? c->src : NULL;
}

const char *smtpc_conn_tls(const struct smtpc_conn *c)
{
	return c->tls_active && c->ssl ? SSL_get_version(c->ssl) : "none";
}

unsigned smtpc_conn_count(const struct smtpc_conn *c)
{
	return c->n_sent;
}

int smtpc_conn_has_dsn(const struct smtpc_conn *c)
{
	return c->caps.dsn;
}

void smtpc_conn_free_all(void)
{
	struct smtpc_conn *c;

	while ((c = LIST_FIRST(&all_conns))) {
		if (c->done) {
			/* a job in progress at exit: its owner is gone too */
			c->done = NULL;
			job_finish(c);
		}
		on_free(-1, 0, c);
	}
}
