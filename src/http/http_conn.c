/*
 * http_conn: one HTTP/1.1 connection: read a request (http_parse), match
 * its route, check its key, read its body, hand it to the handler, write
 * the reply, then wait for the next request on the same connection.
 *
 * One request at a time per connection: reading stops while a request is
 * checked, handled and answered, so a pipelining client cannot make us
 * buffer more than one request. Timeouts ([http] timeout, T):
 *   - a request head must be whole within T of the previous reply (or of
 *     the connection); an idle connection is closed quietly, a partial
 *     request gets 408;
 *   - a body may not stall for T, nor take more than 10 T in all;
 *   - a reply the client does not read for T ends the connection.
 * A connection that closes after its reply (Connection: close, errors,
 * draining) shuts its write side and drops input for HTTP_LINGER_MS, so
 * that a client still sending a body reads our answer instead of a reset.
 *
 * Lifetime: a connection with jobs on workers (busy) is never freed; if
 * its socket dies meanwhile it is marked dead and freed when the last job
 * is back, and the reply is dropped.
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "conf/conf.h"
#include "http/http_int.h"
#include "log/log.h"
#include "metrics/metrics.h"
#include "work/work.h"

static void conn_feed(struct http_conn *c);

/* ---- timers ----------------------------------------------------------------- */

static void arm(struct http_conn *c, uint64_t ms)
{
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};

	evtimer_add(c->timer, &tv);
}

static uint64_t timeout_ms(const struct http_conn *c)
{
	return c->h->conf->http_timeout * 1000;
}

/* While a body arrives: T from now, but never past the body's deadline. */
static void arm_body(struct http_conn *c)
{
	uint64_t now = clock_mono_ms(), t = timeout_ms(c);

	if (c->body_deadline_ms <= now)
		t = 1;
	else if (c->body_deadline_ms - now < t)
		t = c->body_deadline_ms - now;
	arm(c, t);
}

static int request_started(const struct http_conn *c)
{
	return c->parser.state != HP_HEAD || c->parser.head.len > 0;
}

/* ---- freeing ------------------------------------------------------------------- */

/* Empties the request; it stays tied to its connection and parser. */
static void req_clear(struct http_conn *c)
{
	struct http_req *r = &c->req;

	http_match_free(&r->match);
	free(r->path);
	for (size_t i = 0; i < r->n_kept; i++)
		free(r->kept[i]);
	free(r->kept);
	buf_free(&r->extra_headers);
	memset(r, 0, sizeof(*r));
	r->conn = c;
	r->msg = &c->parser.req;
}

static void conn_free(struct http_conn *c)
{
	struct http *h = c->h;

	TAILQ_REMOVE(&h->conns, c, next);
	h->n_conns--;
	metrics_set(M_HTTP_CONNECTIONS, (int64_t)h->n_conns);
	if (c->bev)
		bufferevent_free(c->bev);
	event_free(c->timer);
	req_clear(c);
	http_parser_free(&c->parser);
	free(c);
	if (h->paused && !h->draining && h->n_conns < h->conf->http_max_connections) {
		h->paused = 0;
		evconnlistener_enable(h->evl);
	}
	if (h->draining && h->n_conns == 0)
		event_active(h->ev_drained, EV_TIMEOUT, 0);
}

void http_conn_close(struct http_conn *c)
{
	if (c->busy == 0) {
		conn_free(c);
		return;
	}
	c->dead = 1; /* the job coming back frees it */
	if (c->bev)
		bufferevent_free(c->bev);
	c->bev = NULL;
	evtimer_del(c->timer);
}

/* ---- writing ------------------------------------------------------------------------ */

static void linger(struct http_conn *c)
{
	c->state = CS_LINGER;
	shutdown(bufferevent_getfd(c->bev), SHUT_WR);
	evbuffer_drain(bufferevent_get_input(c->bev),
	               evbuffer_get_length(bufferevent_get_input(c->bev)));
	bufferevent_enable(c->bev, EV_READ);
	arm(c, HTTP_LINGER_MS);
}

/* The reply is out: the next request, or the end. */
static void reply_written(struct http_conn *c)
{
	if (c->close_after) {
		linger(c);
		return;
	}
	req_clear(c);
	http_parser_reset(&c->parser);
	c->state = CS_READ;
	arm(c, timeout_ms(c));
	bufferevent_enable(c->bev, EV_READ);
	if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
		conn_feed(c);
}

static void log_request(struct http_conn *c, int status, size_t len)
{
	struct http_req *r = &c->req;
	const char *route = r->match.route ? r->match.route->pattern : "unmatched";

	log_info("http=%s event=http_request ip=%s method=%s path=%s route=%s status=%d "
	         "bytes=%zu ms=%llu%s%s",
	         c->id, c->ip, r->msg && r->msg->method[0] ? log_q(r->msg->method) : "-",
	         r->path ? log_q(r->path) : "-", route, status, len,
	         (unsigned long long)(r->start_ms ? clock_mono_ms() - r->start_ms : 0),
	         r->authed ? " account=" : "", r->authed ? r->auth.account : "");
}

void http_conn_send(struct http_conn *c, int status, struct buf *response)
{
	size_t route = c->req.match.route ? c->req.match.index : http_n_routes;

	metrics_inc_l2(M_HTTP_REQUESTS, route, metrics_http_code_index(status));
	log_request(c, status, response->len);
	c->req.replied = 1;
	if (c->dead || !c->bev)
		return;
	evtimer_del(c->timer);
	bufferevent_disable(c->bev, EV_READ);
	c->state = CS_WRITE;
	bufferevent_write(c->bev, response->data, response->len);
}

static void on_write(struct bufferevent *bev, void *arg)
{
	struct http_conn *c = arg;

	if (c->state == CS_WRITE && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		reply_written(c);
}

/* ---- reading -------------------------------------------------------------------------- */

/* An error answered straight from the connection (before any handler). */
static void conn_error(struct http_conn *c, int status, const char *code, const char *msg)
{
	http_reply_error(&c->req, status, code, "%s", msg);
}

/* The whole request has been read (head, and body if any). */
static int request_complete(const struct http_conn *c)
{
	return c->parser.state == HP_DONE ||
	       (c->parser.state == HP_HEAD_DONE && !c->parser.req.has_body);
}

int http_conn_closing(struct http_conn *c)
{
	/* Unread request bytes would be read as the next request. */
	if (!request_complete(c) || c->h->draining)
		c->close_after = 1;
	return c->close_after;
}

static void split_target(struct http_req *r)
{
	char *q;

	r->path = xstrdup(r->msg->target);
	if ((q = strchr(r->path, '?'))) {
		*q = '\0';
		r->query = q + 1;
	}
	if ((q = strchr(r->path, '#')))
		*q = '\0';
}

/* After the key check (or without one): read the body, or dispatch. */
static void after_auth(struct http_conn *c)
{
	struct http_request *m = &c->parser.req;

	c->state = CS_READ;
	if (m->has_body) {
		c->body_deadline_ms = clock_mono_ms() + timeout_ms(c) * HTTP_BODY_TIMEOUT_FACTOR;
		arm_body(c);
		if (m->expect_continue && evbuffer_get_length(bufferevent_get_input(c->bev)) == 0)
			bufferevent_write(c->bev, "HTTP/1.1 100 Continue\r\n\r\n", 25);
	}
	bufferevent_enable(c->bev, EV_READ);
}

/* 1: go on reading; 0: the request was answered or waits for its key. */
static int on_head(struct http_conn *c)
{
	struct http_req *r = &c->req;

	r->start_ms = clock_mono_ms();
	c->close_after = !r->msg->keep_alive || c->h->draining;
	split_target(r);
	switch (http_route_match(http_routes, http_n_routes, r->msg->method, r->path, &r->match)) {
	case HTTP_MATCH_BAD_PATH:
		conn_error(c, 400, "bad_request", "malformed request path");
		return 0;
	case HTTP_MATCH_NO_PATH:
		conn_error(c, 404, "not_found", "no such resource");
		return 0;
	case HTTP_MATCH_NO_METHOD:
		http_add_header(r, "Allow", r->match.allow);
		conn_error(c, 405, "method_not_allowed", "method not allowed here");
		return 0;
	case HTTP_MATCH_OK:
		break;
	}
	if (r->match.route->auth == HTTP_AUTH_NONE) {
		after_auth(c);
		return 1;
	}
	c->state = CS_AUTH;
	bufferevent_disable(c->bev, EV_READ);
	switch (http_auth_check(r)) {
	case 1:
		after_auth(c);
		return 1;
	case 0: /* refused and answered */
		return 0;
	default:
		return 0;
	}
}

void http_conn_authed(struct http_conn *c, int ok)
{
	if (!ok || c->dead)
		return;
	after_auth(c);
	conn_feed(c);
}

static void dispatch(struct http_conn *c)
{
	c->state = CS_HANDLER;
	evtimer_del(c->timer);
	bufferevent_disable(c->bev, EV_READ);
	c->req.match.route->handler(&c->req);
}

/* 1: go on feeding; 0: stop (answered, waiting, or an error sent). */
static int on_parsed(struct http_conn *c, enum http_parse_status st)
{
	struct http_parser *p = &c->parser;

	switch (st) {
	case HTTP_P_HEAD:
		return on_head(c);
	case HTTP_P_DONE:
		dispatch(c);
		return 0;
	case HTTP_P_ERROR:
		conn_error(c, p->err_status, p->err_code, p->err_msg);
		return 0;
	default:
		if (p->state != HP_HEAD)
			arm_body(c);
		return 1;
	}
}

/* Parses what the input holds, as far as the current state allows. */
static void conn_feed(struct http_conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	struct evbuffer_iovec v[1];
	int go = 1;

	while (go && c->state == CS_READ && !c->dead) {
		int n = evbuffer_peek(in, -1, NULL, v, 1);
		size_t used = 0;
		enum http_parse_status st;

		if (n <= 0 && c->parser.state != HP_HEAD_DONE)
			break;
		st = http_parse(&c->parser, n > 0 ? v[0].iov_base : "", n > 0 ? v[0].iov_len : 0,
		                &used);
		evbuffer_drain(in, used);
		go = on_parsed(c, st) && (st != HTTP_P_MORE || used > 0);
	}
}

static void on_read(struct bufferevent *bev, void *arg)
{
	struct http_conn *c = arg;

	if (c->state == CS_LINGER)
		evbuffer_drain(bufferevent_get_input(bev),
		               evbuffer_get_length(bufferevent_get_input(bev)));
	else if (c->state == CS_READ)
		conn_feed(c);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct http_conn *c = arg;

	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))
		http_conn_close(c);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct http_conn *c = arg;

	if (c->state == CS_READ && request_started(c)) {
		log_info("http=%s event=http_timeout ip=%s", c->id, c->ip);
		conn_error(c, 408, "request_timeout", "request not received in time");
	} else if (c->state == CS_READ || c->state == CS_LINGER) {
		http_conn_close(c);
	}
}

/* ---- accepting ------------------------------------------------------------------------------ */

void http_conn_accept(struct http *h, int fd, const char *ip)
{
	struct http_conn *c = xcalloc(1, sizeof(*c));
	struct timeval wt = {(time_t)h->conf->http_timeout, 0};

	c->h = h;
	id_new(c->id);
	snprintf(c->ip, sizeof(c->ip), "%s", ip);
	c->bev = bufferevent_socket_new(h->base, fd, BEV_OPT_CLOSE_ON_FREE);
	c->timer = evtimer_new(h->base, on_timer, c);
	http_parser_init(&c->parser, h->conf->http_max_request_size);
	req_clear(c);
	TAILQ_INSERT_TAIL(&h->conns, c, next);
	h->n_conns++;
	metrics_set(M_HTTP_CONNECTIONS, (int64_t)h->n_conns);
	bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
	bufferevent_set_timeouts(c->bev, NULL, &wt);
	bufferevent_enable(c->bev, EV_READ);
	c->state = CS_READ;
	arm(c, timeout_ms(c));
}

/* Draining: connections between requests close now; the others after
 * their reply (on_head and the reply head see h->draining). */
void http_conn_close_idle(struct http *h)
{
	struct http_conn *c, *tmp;

	for (c = TAILQ_FIRST(&h->conns); c; c = tmp) {
		tmp = TAILQ_NEXT(c, next);
		if (c->state == CS_READ && !request_started(c))
			http_conn_close(c);
		else
			c->close_after = 1;
	}
}

/* ---- work on workers
 * ------------------------------------------------------------------------------ */

struct defer_job {
	struct http_conn *c;
	void (*work)(void *arg);
	void (*done)(void *arg);
	void *arg;
};

static void defer_work(void *arg)
{
	struct defer_job *j = arg;

	j->work(j->arg);
}

static void defer_done(void *arg)
{
	struct defer_job *j = arg;
	struct http_conn *c = j->c;

	j->done(j->arg);
	free(j);
	if (--c->busy == 0 && c->dead)
		conn_free(c);
}

void http_conn_defer(struct http_conn *c, void (*work)(void *arg), void (*done)(void *arg),
                     void *arg)
{
	struct defer_job *j = xcalloc(1, sizeof(*j));

	j->c = c;
	j->work = work;
	j->done = done;
	j->arg = arg;
	c->busy++;
	work_submit(c->h->deps.work, defer_work, defer_done, j);
}
