/*
 * http: the server's lifecycle (see http.h): the listening socket, the
 * connection cap, draining, and the route label of the request metric.
 *
 * Why not libevent's evhttp: the Debian build (2.1) answers its own
 * limits with fixed HTML pages and no hook to change them (evhttp_set_
 * errorcb came in 2.2): an oversized head is a 400 page, an oversized body
 * a 413 page sent after reading (or resetting) the whole body, a bad
 * request line a 400 page. SPEC 6 wants every error as JSON, with 431 for
 * headers and 413 before the body is read. Its timeouts are per read, so a
 * client sending a byte now and then is never cut, and it cannot drain.
 * http_parse.c (pure, fuzzed) and http_conn.c replace it on bufferevents.
 */
#include "http/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "http/http_int.h"
#include "log/log.h"
#include "metrics/metrics.h"

#define HTTP_BACKLOG 511

/* The route label of posthorn_http_requests_total: every pattern, then
 * "unmatched" (index http_n_routes). */
static const char **route_labels(void)
{
	static const char **labels;

	if (!labels) {
		labels = xcalloc(http_n_routes + 1, sizeof(*labels));
		for (size_t i = 0; i < http_n_routes; i++)
			labels[i] = http_routes[i].pattern;
		labels[http_n_routes] = "unmatched";
	}
	return labels;
}

static void on_accept(struct evconnlistener *evl, evutil_socket_t fd, struct sockaddr *sa, int len,
                      void *arg)
{
	struct http *h = arg;
	char ip[INET6_ADDRSTRLEN] = "?";

	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)sa)->sin_addr, ip, sizeof(ip));
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)sa)->sin6_addr, ip, sizeof(ip));
	http_conn_accept(h, fd, ip);
	/* At the cap, further clients wait in the kernel's backlog. */
	if (h->n_conns >= h->conf->http_max_connections && !h->paused) {
		h->paused = 1;
		evconnlistener_disable(evl);
		log_warn("event=http_connection_cap connections=%zu", h->n_conns);
	}
}

static void on_accept_error(struct evconnlistener *evl, void *arg)
{
	int e = EVUTIL_SOCKET_ERROR();

	log_warn("event=http_accept_error error=%s", log_q(evutil_socket_error_to_string(e)));
}

static void on_drained(evutil_socket_t fd, short what, void *arg)
{
	struct http *h = arg;

	if (h->drained) {
		void (*done)(void *) = h->drained;
		h->drained = NULL;
		done(h->drained_arg);
	}
}

int http_open(struct event_base *base, const struct conf *c, struct http **out, char **err)
{
	struct http *h;
	const struct conf_addr *a = &c->http_address;

	*out = NULL;
	if (!c->http_enabled)
		return 0;
	h = xcalloc(1, sizeof(*h));
	h->base = base;
	h->conf = c;
	TAILQ_INIT(&h->conns);
	h->evl = evconnlistener_new_bind(
	    base, on_accept, h,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_DISABLED,
	    HTTP_BACKLOG, (const struct sockaddr *)&a->ss, (int)a->len);
	if (!h->evl) {
		*err = xasprintf("http: cannot listen on %s: %s", a->text, strerror(errno));
		free(h);
		return -1;
	}
	evconnlistener_set_error_cb(h->evl, on_accept_error);
	h->ev_drained = event_new(base, -1, 0, on_drained, h);
	/* Without a listener nobody reads the registry: it stays unallocated
	 * and increments cost a NULL check. It is never freed: other threads
	 * may count until the process exits. */
	metrics_init();
	metrics_bind_labels(M_HTTP_REQUESTS, 0, route_labels(), http_n_routes + 1);
	log_info("event=listen listener=http address=%s", a->text);
	*out = h;
	return 0;
}

void http_start(struct http *h, const struct http_deps *deps)
{
	if (!h)
		return;
	h->deps = *deps;
	h->keys = http_keys_new(h);
	h->started = 1;
	evconnlistener_enable(h->evl);
}

void http_drain(struct http *h, void (*done)(void *arg), void *arg)
{
	if (!h) {
		done(arg);
		return;
	}
	h->draining = 1;
	h->drained = done;
	h->drained_arg = arg;
	if (h->evl)
		evconnlistener_free(h->evl);
	h->evl = NULL;
	http_conn_close_idle(h);
	if (h->n_conns == 0)
		event_active(h->ev_drained, EV_TIMEOUT, 0);
}

void http_free(struct http *h)
{
	if (!h)
		return;
	h->drained = NULL;
	h->draining = 1; /* no listener re-enabling from conn_free */
	while (!TAILQ_EMPTY(&h->conns)) {
		struct http_conn *c = TAILQ_FIRST(&h->conns);
		c->busy = 0; /* the work pool is gone: no job comes back */
		http_conn_close(c);
	}
	if (h->evl)
		evconnlistener_free(h->evl);
	http_keys_free(h->keys);
	event_free(h->ev_drained);
	free(h);
}
