/*
 * https: libcurl's multi interface on the libevent loop (the socket and
 * timer callbacks of curl_multi_socket_action), with Posthorn's resolver in
 * front. Contract in https.h.
 *
 * Why libcurl: an HTTP/1.1 client with TLS, chunked bodies, redirects
 * turned off and strict certificate checks is exactly what a well-kept
 * library does; its multi interface runs on our loop without threads.
 * Names are resolved by dns_host() and handed to curl as CURLOPT_RESOLVE
 * entries, so curl never asks the system resolver and the addresses can be
 * screened against blocked_destinations first.
 *
 * A request goes: dns_host() -> screened addresses -> curl easy handle in
 * the multi handle -> CURLMSG_DONE -> callback. Failures before curl (bad
 * URL, DNS, every address blocked) are reported from an event of their
 * own, never from inside https_start().
 */
#include "policy/https.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "dns/dns.h"
#include "log/log.h"
#include "util/util.h"

#define USER_AGENT "Posthorn"

struct xfer {
	struct xfer *prev, *next;
	struct https *h;
	uint64_t id, dns_id;
	CURL *easy;
	struct curl_slist *resolve, *headers;
	char *url, *host;
	long port;
	char *body;
	size_t body_len, max;
	const char *content_type;
	char *ctype;
	unsigned timeout_ms;
	struct buf got;
	int too_big;
	const char *fail; /* set before curl runs: why it failed */
	struct event *ev_fail;
	https_cb cb;
	void *arg;
	char err[CURL_ERROR_SIZE];
};

struct https {
	struct event_base *base;
	struct dns *dns;
	CURLM *multi;
	struct event *timer;
	char *ca_file;
	const struct conf_net *blocked;
	size_t n_blocked;
	struct xfer *list;
	uint64_t next_id;
};

static void check_done(struct https *h);

/* ---------- transfers ---------- */

static void xfer_free(struct xfer *x)
{
	struct https *h = x->h;

	if (x->prev)
		x->prev->next = x->next;
	else
		h->list = x->next;
	if (x->next)
		x->next->prev = x->prev;
	if (x->dns_id)
		dns_cancel(h->dns, x->dns_id);
	if (x->easy) {
		curl_multi_remove_handle(h->multi, x->easy);
		curl_easy_cleanup(x->easy);
	}
	curl_slist_free_all(x->resolve);
	curl_slist_free_all(x->headers);
	event_free(x->ev_fail);
	buf_free(&x->got);
	free(x->url);
	free(x->host);
	free(x->body);
	free(x->ctype);
	free(x);
}

/* Calls back once, then frees x (r may point into it). */
static void finish(struct xfer *x, const struct https_result *r)
{
	x->cb(x->arg, r);
	xfer_free(x);
}

static void on_fail_event(evutil_socket_t fd, short what, void *arg)
{
	struct xfer *x = arg;
	struct https_result r = {0, 0, NULL, 0, 0, x->fail};

	finish(x, &r);
}

static void fail_later(struct xfer *x, const char *why)
{
	x->fail = why;
	event_active(x->ev_fail, EV_TIMEOUT, 0);
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	struct xfer *x = arg;
	size_t len = size * n;

	if (x->got.len + len > x->max) {
		x->too_big = 1;
		return 0; /* curl stops with CURLE_WRITE_ERROR */
	}
	buf_append(&x->got, p, len);
	return len;
}

/* The system's CA store (curl's default) plus [tls] ca_file. */
static CURLcode on_ssl_ctx(CURL *easy, void *ssl_ctx, void *arg)
{
	const char *ca_file = arg;

	SSL_CTX_set_min_proto_version(ssl_ctx, TLS1_2_VERSION);
	if (ca_file && SSL_CTX_load_verify_locations(ssl_ctx, ca_file, NULL) != 1)
		return CURLE_SSL_CACERT_BADFILE;
	return CURLE_OK;
}

static void easy_setup(struct xfer *x)
{
	CURL *e = x->easy;

	curl_easy_setopt(e, CURLOPT_URL, x->url);
	curl_easy_setopt(e, CURLOPT_PRIVATE, x);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_PROXY, "");
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L); /* no idle sockets left behind */
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(e, CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx);
	curl_easy_setopt(e, CURLOPT_SSL_CTX_DATA, x->h->ca_file);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)x->timeout_ms);
	curl_easy_setopt(e, CURLOPT_RESOLVE, x->resolve);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(e, CURLOPT_USERAGENT, USER_AGENT);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->err);
	if (x->content_type) {
		x->headers = curl_slist_append(NULL, x->content_type);
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->body);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)x->body_len);
	}
}

/* ---------- curl on libevent ---------- */

static void on_sock(evutil_socket_t fd, short what, void *arg)
{
	struct https *h = arg;
	int running, flags = ((what & EV_READ) ? CURL_CSELECT_IN : 0) |
	                     ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);

	curl_multi_socket_action(h->multi, fd, flags, &running);
	check_done(h);
}

/* curl says what a socket waits for; its event is remade each time. */
static int sock_cb(CURL *e, curl_socket_t s, int what, void *userp, void *sockp)
{
	struct https *h = userp;
	struct event *ev = sockp;
	short kind = (short)(((what & CURL_POLL_IN) ? EV_READ : 0) |
	                     ((what & CURL_POLL_OUT) ? EV_WRITE : 0));

	if (ev)
		event_free(ev);
	ev = NULL;
	if (what != CURL_POLL_REMOVE) {
		ev = event_new(h->base, s, kind | EV_PERSIST, on_sock, h);
		event_add(ev, NULL);
	}
	curl_multi_assign(h->multi, s, ev);
	return 0;
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct https *h = arg;
	int running;

	curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done(h);
}

static int timer_cb(CURLM *m, long timeout_ms, void *userp)
{
	struct https *h = userp;
	struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};

	if (timeout_ms < 0)
		evtimer_del(h->timer);
	else
		evtimer_add(h->timer, &tv);
	return 0;
}

static void done_one(struct xfer *x, CURLcode rc)
{
	struct https_result r = {rc == CURLE_OK, 0, x->got.data ? x->got.data : "",
	                         x->got.len,     0, NULL};

	if (rc == CURLE_OK) {
		curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &r.status);
	} else {
		r.cert_failed =
		    rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE;
		r.error = x->too_big  ? "answer larger than allowed"
		          : x->err[0] ? x->err
		                      : curl_easy_strerror(rc);
	}
	finish(x, &r);
}

static void check_done(struct https *h)
{
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(h->multi, &left))) {
		struct xfer *x = NULL;

		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
		if (x)
			done_one(x, m->data.result);
	}
}

/* ---------- resolving ---------- */

static int blocked(const struct https *h, const struct dns_addr *a)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	ss.ss_family = (sa_family_t)a->family;
	if (a->family == AF_INET6)
		memcpy(&((struct sockaddr_in6 *)&ss)->sin6_addr, a->addr, 16);
	else
		memcpy(&((struct sockaddr_in *)&ss)->sin_addr, a->addr, 4);
	for (size_t i = 0; i < h->n_blocked; i++)
		if (conf_net_contains(&h->blocked[i], (struct sockaddr *)&ss))
			return 1;
	return 0;
}

/* "host:port:a1,a2" for CURLOPT_RESOLVE, from the usable addresses. */
static int resolve_entry(struct xfer *x, const struct dns_route_host *host, struct buf *b)
{
	int n = 0;

	buf_printf(b, "%s:%ld:", x->host, x->port);
	for (size_t i = 0; i < host->n_addrs; i++) {
		char text[DNS_ADDR_STRLEN];
		if (blocked(x->h, &host->addrs[i]))
			continue;
		dns_addr_str(&host->addrs[i], text);
		buf_printf(b, host->addrs[i].family == AF_INET6 ? "%s[%s]" : "%s%s", n++ ? "," : "",
		           text);
	}
	return n;
}

static void start_curl(struct xfer *x)
{
	x->easy = curl_easy_init();
	if (!x->easy) {
		fail_later(x, "cannot start a transfer");
		return;
	}
	easy_setup(x);
	if (curl_multi_add_handle(x->h->multi, x->easy) != CURLM_OK)
		fail_later(x, "cannot start a transfer");
}

static void on_dns(void *arg, const struct dns_route *r)
{
	struct xfer *x = arg;
	struct buf b;

	x->dns_id = 0;
	if (r->status != DNS_OK || r->n_hosts == 0) {
		fail_later(x, "cannot resolve the host");
		return;
	}
	buf_init(&b);
	if (resolve_entry(x, &r->hosts[0], &b) == 0) {
		buf_free(&b);
		fail_later(x, "every address of the host is in blocked_destinations");
		return;
	}
	x->resolve = curl_slist_append(NULL, b.data);
	buf_free(&b);
	start_curl(x);
}

/* Host and port of an https URL, through curl's own URL parser. */
static int url_parts(struct xfer *x)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *port = NULL;
	int ok = 0;

	if (u && curl_url_set(u, CURLUPART_URL, x->url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK) {
		ok = ascii_casecmp(scheme, "https") == 0 && host[0] && host[0] != '[';
		x->host = xstrdup(host);
		x->port = strtol(port, NULL, 10);
	}
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
	return ok ? 0 : -1;
}

uint64_t https_start(struct https *h, const struct https_req *req, https_cb cb, void *arg)
{
	struct xfer *x = xcalloc(1, sizeof(*x));

	x->h = h;
	x->id = h->next_id++;
	x->url = xstrdup(req->url);
	x->max = req->max_bytes;
	x->timeout_ms = req->timeout_ms;
	x->cb = cb;
	x->arg = arg;
	buf_init(&x->got);
	x->ev_fail = event_new(h->base, -1, 0, on_fail_event, x);
	if (req->content_type) {
		x->ctype = xasprintf("Content-Type: %s", req->content_type);
		x->content_type = x->ctype;
		x->body = xmalloc(req->body_len ? req->body_len : 1);
		memcpy(x->body, req->body, req->body_len);
		x->body_len = req->body_len;
	}
	x->next = h->list;
	if (h->list)
		h->list->prev = x;
	h->list = x;
	if (url_parts(x) < 0)
		fail_later(x, "not an https URL with a host name");
	else if (!(x->dns_id = dns_host(h->dns, x->host, on_dns, x)))
		fail_later(x, "the resolver is shutting down");
	return x->id;
}

void https_cancel(struct https *h, uint64_t id)
{
	for (struct xfer *x = h->list; x; x = x->next) {
		if (x->id == id) {
			xfer_free(x);
			return;
		}
	}
}

struct https *https_new(struct event_base *base, struct dns *dns, const char *ca_file,
                        const struct conf_net *blocked_nets, size_t n_blocked, char **err)
{
	struct https *h;

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		*err = xstrdup("cannot start libcurl");
		return NULL;
	}
	h = xcalloc(1, sizeof(*h));
	h->base = base;
	h->dns = dns;
	h->ca_file = ca_file ? xstrdup(ca_file) : NULL;
	h->blocked = blocked_nets;
	h->n_blocked = n_blocked;
	h->next_id = 1;
	h->multi = curl_multi_init();
	h->timer = evtimer_new(base, on_timer, h);
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
	return h;
}

void https_free(struct https *h)
{
	if (!h)
		return;
	while (h->list)
		xfer_free(h->list);
	curl_multi_cleanup(h->multi);
	event_free(h->timer);
	free(h->ca_file);
	free(h);
	curl_global_cleanup();
}
