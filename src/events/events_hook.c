/*
 * events_hook: the webhook dispatcher. One thread with a libcurl multi
 * handle POSTs each webhook's events in batches, signed as SPEC 6 pins it.
 *
 * Promises:
 * - Webhooks are independent: each has at most one POST in flight, all
 *   POSTs run concurrently on the multi handle, and a slow or dead
 *   endpoint only waits for its own timeout ([events] webhook_timeout). The
 *   mail path never waits for any of this: the thread has its own loop.
 * - At least once: the cursor (the last event delivered) moves in the
 *   database only after a 2xx. A POST cut short by a stop or a crash is
 *   sent again after the restart; receivers deduplicate by event id.
 * - A failed POST is retried after [events] webhook_backoff, doubling per
 *   failure up to an hour. An event not delivered within
 *   [events] webhook_retry_for of when it happened is dropped at the next
 *   failure: logged with its ids, recorded as a failure with dropped: 1,
 *   and counted (posthorn_webhook_events_dropped_total).
 * - Each POST: at most 100 events, no redirects followed, no proxy, http
 *   and https only, TLS 1.2 or later verified against the system CAs plus
 *   [tls] ca_file, at most 64 KiB of answer read. Webhooks made with an
 *   account key cannot reach [events] webhook_blocked_destinations: every
 *   address is checked as the socket is opened, after DNS, so a name that
 *   resolves (or rebinds) to a blocked address is refused too.
 * - Changes made through the API (new, changed, deleted webhooks) are
 *   picked up within a second.
 * - One node at a time POSTs a webhook's events: before each POST the node
 *   claims the webhook in the database (store_webhook_claim) for
 *   webhook_timeout + CLAIM_MARGIN_MS and starts from the cursor the claim
 *   read. Another node's claim is skipped until it runs out: a node that
 *   died mid-POST frees its webhooks then, and the next claimant sends the
 *   batch again (at least once, never twice while the first one lives).
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "conf/conf.h"
#include "events/events.h"
#include "log/log.h"
#include "metrics/metrics.h"
#include "util/util.h"

#define HOOK_BATCH      100
#define RELOAD_MS       1000
#define ANSWER_MAX      (64 * 1024)
#define SNIPPET_MAX     200
#define USER_AGENT      "Posthorn-Webhook/1"
#define WAIT_MAX_MS     1000
#define CLAIM_MARGIN_MS 10000

struct hook;

struct transfer {
	struct hook *hook;
	struct events_hooks *hs;
	CURL *easy;
	struct curl_slist *headers;
	char *body;
	int64_t first_event, last_event, oldest_ms;
	size_t n_events;
	size_t got;
	char snippet[SNIPPET_MAX + 1];
	int too_big, blocked;
	char blocked_addr[INET6_ADDRSTRLEN];
	char errbuf[CURL_ERROR_SIZE];
};

struct hook {
	struct store_webhook w;
	int64_t scan_from; /* >= w.last_event_id: none of ours between them */
	int seen;
	struct transfer *t;
};

struct events_hooks {
	struct store *st;
	struct events_hooks_opts o;
	char *ca_file;
	CURLM *multi;
	pthread_t thread;
	atomic_int stop;
	struct hook **v;
	size_t n, cap;
	int64_t last_id;
	uint64_t next_reload_ms;
	struct log_repeat store_rep; /* the store's failures (this thread only) */
};

static int64_t now_ms(void)
{
	return (int64_t)clock_now_ms();
}

/* ---- the webhooks, as the database has them ------------------------------------- */

static void copy_hook(struct store_webhook *dst, const struct store_webhook *src)
{
	store_webhook_clear(dst);
	*dst = *src;
	dst->url = xstrdup(src->url);
	dst->secret = xstrdup(src->secret);
	dst->description = xstrdup(src->description);
}

static struct hook *find(struct events_hooks *hs, int64_t id)
{
	for (size_t i = 0; i < hs->n; i++)
		if (hs->v[i]->w.id == id)
			return hs->v[i];
	return NULL;
}

static void on_row(void *arg, const struct store_webhook *w)
{
	struct events_hooks *hs = arg;
	struct hook *h = find(hs, w->id);

	if (!h) {
		if (hs->n == hs->cap) {
			hs->cap = hs->cap ? hs->cap * 2 : 8;
			hs->v = xrealloc(hs->v, hs->cap * sizeof(*hs->v));
		}
		h = hs->v[hs->n++] = xcalloc(1, sizeof(*h));
	}
	h->seen = 1;
	if (h->t) /* its state changes when the POST ends */
		return;
	copy_hook(&h->w, w);
	if (h->scan_from < w->last_event_id)
		h->scan_from = w->last_event_id;
}

static void transfer_free(struct events_hooks *hs, struct transfer *t)
{
	curl_multi_remove_handle(hs->multi, t->easy);
	curl_easy_cleanup(t->easy);
	curl_slist_free_all(t->headers);
	free(t->body);
	t->hook->t = NULL;
	free(t);
}

static void hook_free(struct events_hooks *hs, struct hook *h)
{
	if (h->t)
		transfer_free(hs, h->t);
	store_webhook_clear(&h->w);
	free(h);
}

/* The list or the last event ID could not be read (the database is down:
 * tried every second, logged once a minute); frees err. */
static void store_failed(struct events_hooks *hs, char *err)
{
	unsigned long long n;

	if (log_repeat_fail(&hs->store_rep, &n))
		log_warn("event=webhook_store_error error=%s repeated=%llu", log_q(err), n);
	free(err);
}

/* Webhooks deleted meanwhile go (a POST in flight is abandoned). */
static void reload(struct events_hooks *hs)
{
	char *err = NULL;
	size_t k = 0;
	unsigned long long n;

	for (size_t i = 0; i < hs->n; i++)
		hs->v[i]->seen = 0;
	if (store_webhook_list(hs->st, NULL, on_row, hs, &err) < 0) {
		store_failed(hs, err);
		return;
	}
	if (log_repeat_ok(&hs->store_rep, &n))
		log_info("event=webhook_store_ok failures=%llu", n);
	for (size_t i = 0; i < hs->n; i++) {
		if (hs->v[i]->seen)
			hs->v[k++] = hs->v[i];
		else
			hook_free(hs, hs->v[i]);
	}
	hs->n = k;
}

/* ---- a batch --------------------------------------------------------------------------- */

struct batch {
	json_t *events;
	int64_t first, last, oldest_ms;
};

static void add_row(void *arg, const struct store_event_row *e)
{
	struct batch *b = arg;

	json_array_append_new(b->events, events_row_json(e));
	if (!b->first)
		b->first = e->id;
	b->last = e->id;
	if (!b->oldest_ms || e->time_ms < b->oldest_ms)
		b->oldest_ms = e->time_ms;
}

/* The next events for h: 1 found (b filled), 0 none, -1 error. */
static int next_batch(struct events_hooks *hs, struct hook *h, struct batch *b)
{
	struct store_event_filter f;
	char *err = NULL;

	memset(&f, 0, sizeof(f));
	f.account = h->w.account;
	f.types = h->w.types;
	f.after = h->scan_from;
	f.limit = hs->o.batch_max;
	memset(b, 0, sizeof(*b));
	b->events = json_array();
	if (store_events_query(hs->st, &f, add_row, b, &err) < 0) {
		log_warn("event=webhook_store_error webhook=%lld error=%s", (long long)h->w.id,
		         log_q(err));
		free(err);
		json_decref(b->events);
		return -1;
	}
	if (json_array_size(b->events) > 0)
		return 1;
	json_decref(b->events);
	return 0;
}

/* ---- one POST ------------------------------------------------------------------------ */

static size_t on_answer(char *p, size_t size, size_t n, void *arg)
{
	struct transfer *t = arg;
	size_t len = size * n, room = SNIPPET_MAX - strlen(t->snippet);

	if (room)
		strncat(t->snippet, p, len < room ? len : room);
	t->got += len;
	if (t->got > ANSWER_MAX) {
		t->too_big = 1;
		return 0; /* ends the transfer: the answer is not ours to read */
	}
	return len;
}

static curl_socket_t open_socket(void *arg, curlsocktype purpose, struct curl_sockaddr *a)
{
	struct transfer *t = arg;
	const struct events_hooks *hs = t->hs;
	const void *ip = a->family == AF_INET6
	                     ? (const void *)&((struct sockaddr_in6 *)&a->addr)->sin6_addr
	                     : (const void *)&((struct sockaddr_in *)&a->addr)->sin_addr;

	if (!t->hook->w.unrestricted &&
	    events_hook_addr_blocked(&a->addr, hs->o.blocked, hs->o.n_blocked)) {
		t->blocked = 1;
		inet_ntop(a->family, ip, t->blocked_addr, sizeof(t->blocked_addr));
		return CURL_SOCKET_BAD;
	}
	return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

/* [tls] ca_file is added to the system CAs libcurl loaded. */
static CURLcode on_ssl_ctx(CURL *easy, void *ssl_ctx, void *arg)
{
	const char *ca_file = arg;

	if (ca_file && SSL_CTX_load_verify_locations(ssl_ctx, ca_file, NULL) != 1)
		return CURLE_SSL_CACERT_BADFILE;
	return CURLE_OK;
}

static struct curl_slist *headers(const struct hook *h, const char *body, size_t len)
{
	struct curl_slist *l = NULL;
	int64_t ts = now_ms() / 1000;
	char sig[65], line[128];

	events_hook_sign(h->w.secret, ts, body, len, sig);
	l = curl_slist_append(l, "Content-Type: application/json");
	l = curl_slist_append(l, "Expect:");
	snprintf(line, sizeof(line), "X-Posthorn-Timestamp: %lld", (long long)ts);
	l = curl_slist_append(l, line);
	snprintf(line, sizeof(line), "X-Posthorn-Signature: %s", sig);
	l = curl_slist_append(l, line);
	snprintf(line, sizeof(line), "X-Posthorn-Webhook: %lld", (long long)h->w.id);
	return curl_slist_append(l, line);
}

static void easy_setup(struct events_hooks *hs, struct transfer *t, size_t len)
{
	CURL *e = t->easy;
	long ms = (long)hs->o.timeout * 1000;

	curl_easy_setopt(e, CURLOPT_URL, t->hook->w.url);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, t->body);
	curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);
	curl_easy_setopt(e, CURLOPT_USERAGENT, USER_AGENT);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, ms);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, ms);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_PROXY, "");
	curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	curl_easy_setopt(e, CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx);
	curl_easy_setopt(e, CURLOPT_SSL_CTX_DATA, hs->ca_file);
	curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_socket);
	curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, t);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_answer);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->errbuf);
	curl_easy_setopt(e, CURLOPT_PRIVATE, t);
}

static void start(struct events_hooks *hs, struct hook *h, struct batch *b)
{
	struct transfer *t = xcalloc(1, sizeof(*t));
	json_t *doc = json_pack("{s:o}", "events", b->events);
	size_t len;

	t->hook = h;
	t->hs = hs;
	t->body = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	len = strlen(t->body);
	t->first_event = b->first;
	t->last_event = b->last;
	t->oldest_ms = b->oldest_ms;
	t->n_events = json_array_size(b->events);
	t->headers = headers(h, t->body, len);
	if (!(t->easy = curl_easy_init()))
		fatal("event=out_of_memory where=curl_easy_init");
	easy_setup(hs, t, len);
	h->t = t;
	curl_multi_add_handle(hs->multi, t->easy);
}

/* 1 when this node may POST h's next batch now; h's cursor and failure
 * state are then the database's (another node may have moved them). */
static int claimed(struct events_hooks *hs, struct hook *h)
{
	int64_t now = now_ms(), until = now + (int64_t)hs->o.timeout * 1000 + CLAIM_MARGIN_MS;
	const char *node = hs->o.node_id ? hs->o.node_id : "";
	char *err = NULL;
	int rc = store_webhook_claim(hs->st, h->w.id, node, now, until, &h->w, &err);

	if (rc < 0) {
		log_warn("event=webhook_store_error webhook=%lld error=%s", (long long)h->w.id,
		         log_q(err));
		free(err);
		return 0;
	}
	if (rc == 1 && h->scan_from < h->w.last_event_id)
		h->scan_from = h->w.last_event_id;
	return rc == 1 && h->w.next_attempt_ms <= now;
}

/* Starts a POST for every webhook that is due and has events waiting. */
static void start_due(struct events_hooks *hs)
{
	int64_t now = now_ms();

	for (size_t i = 0; i < hs->n; i++) {
		struct hook *h = hs->v[i];
		struct batch b;
		int rc;

		if (h->t || h->w.next_attempt_ms > now || h->scan_from >= hs->last_id)
			continue;
		if (!claimed(hs, h))
			continue;
		rc = next_batch(hs, h, &b);
		if (rc == 0)
			h->scan_from = hs->last_id; /* nothing of ours up to there */
		else if (rc == 1)
			start(hs, h, &b);
	}
}

/* ---- the end of a POST ------------------------------------------------------------------ */

static void delivered(struct events_hooks *hs, struct hook *h, const struct transfer *t, long code)
{
	char *err = NULL;

	metrics_inc_l(M_WEBHOOK_REQUESTS, MRES_OK);
	log_info("event=webhook_delivered webhook=%lld status=%ld events=%zu "
	         "first=%lld last=%lld",
	         (long long)h->w.id, code, t->n_events, (long long)t->first_event,
	         (long long)t->last_event);
	if (store_webhook_delivered(hs->st, h->w.id, t->last_event, &err) < 0) {
		/* The cursor stays behind: the batch is sent again (at least once). */
		log_warn("event=webhook_store_error webhook=%lld error=%s", (long long)h->w.id,
		         log_q(err));
		free(err);
		return;
	}
	h->w.last_event_id = t->last_event;
	if (h->scan_from < t->last_event)
		h->scan_from = t->last_event;
	h->w.failures = h->w.first_failure_ms = h->w.next_attempt_ms = 0;
}

/* What went wrong, for the failure record and the log. */
static void describe(const struct transfer *t, CURLcode rc, long code, char *out, size_t cap)
{
	char *snippet = events_utf8_clean(t->snippet, strlen(t->snippet));

	if (t->blocked)
		snprintf(out, cap, "destination %s is in webhook_blocked_destinations",
		         t->blocked_addr);
	else if (t->too_big)
		snprintf(out, cap, "answer larger than %d bytes", ANSWER_MAX);
	else if (rc != CURLE_OK)
		snprintf(out, cap, "%s", t->errbuf[0] ? t->errbuf : curl_easy_strerror(rc));
	else
		snprintf(out, cap, "HTTP %ld%s%s", code, *snippet ? ": " : "", snippet);
	free(snippet);
}

/* Events older than retry_for are given up: the cursor moves past them. */
static int expire(struct events_hooks *hs, struct hook *h, struct store_webhook_failure *f)
{
	int64_t cutoff = f->time_ms - (int64_t)hs->o.retry_for * 1000, last = 0, n = 0;
	char *err = NULL;

	if (store_events_expired(hs->st, h->w.account, h->w.types, h->w.last_event_id, cutoff,
	                         &last, &n, &err) < 0) {
		log_warn("event=webhook_store_error webhook=%lld error=%s", (long long)h->w.id,
		         log_q(err));
		free(err);
		return 0;
	}
	if (last == 0)
		return 0;
	f->dropped = 1;
	f->first_event = h->w.last_event_id + 1;
	f->last_event = last;
	metrics_add(M_WEBHOOK_DROPPED, (uint64_t)n);
	log_warn("event=webhook_dropped webhook=%lld events=%lld first=%lld "
	         "last=%lld reason=retry_for_passed failures=%lld",
	         (long long)h->w.id, (long long)n, (long long)f->first_event, (long long)last,
	         (long long)h->w.failures + 1);
	return 1;
}

static void failed(struct events_hooks *hs, struct hook *h, const struct transfer *t, CURLcode rc,
                   long code)
{
	char why[WEBHOOK_ERROR_MAX], *err = NULL;
	struct store_webhook_failure f = {now_ms(), t->first_event, t->last_event, (int)code, why,
	                                  0};
	int64_t failures = h->w.failures + 1;
	int64_t first = h->w.first_failure_ms ? h->w.first_failure_ms : f.time_ms;
	int64_t next = f.time_ms + events_hook_delay_ms(hs->o.backoff, failures);

	metrics_inc_l(M_WEBHOOK_REQUESTS, MRES_FAILED);
	describe(t, rc, code, why, sizeof(why));
	if (t->oldest_ms < f.time_ms - (int64_t)hs->o.retry_for * 1000)
		expire(hs, h, &f);
	log_warn("event=webhook_failed webhook=%lld status=%ld events=%zu "
	         "failures=%lld retry_in_ms=%lld error=%s",
	         (long long)h->w.id, code, t->n_events, (long long)failures,
	         (long long)(next - f.time_ms), log_q(why));
	if (store_webhook_failed(hs->st, h->w.id, &f, failures, first, next, &err) < 0) {
		log_warn("event=webhook_store_error webhook=%lld error=%s", (long long)h->w.id,
		         log_q(err));
		free(err);
	}
	h->w.failures = failures;
	h->w.first_failure_ms = first;
	h->w.next_attempt_ms = next;
	if (f.dropped)
		h->w.last_event_id = h->scan_from = f.last_event;
}

static void finished(struct events_hooks *hs, CURL *easy, CURLcode rc)
{
	struct transfer *t = NULL;
	long code = 0;

	curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&t);
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
	if (!t)
		return;
	/* An answer over the bound after a 2xx status line is still a 2xx. */
	if ((rc == CURLE_OK || (t->too_big && rc == CURLE_WRITE_ERROR)) && code >= 200 &&
	    code < 300)
		delivered(hs, t->hook, t, code);
	else
		failed(hs, t->hook, t, rc, code);
	transfer_free(hs, t);
}

static void collect(struct events_hooks *hs)
{
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(hs->multi, &left)) != NULL)
		if (m->msg == CURLMSG_DONE)
			finished(hs, m->easy_handle, m->data.result);
}

/* ---- the thread ------------------------------------------------------------------------- */

/* Until the next webhook's retry is due, at most WAIT_MAX_MS. */
static int wait_ms(struct events_hooks *hs)
{
	int64_t now = now_ms(), wait = WAIT_MAX_MS;

	for (size_t i = 0; i < hs->n; i++) {
		const struct hook *h = hs->v[i];
		if (!h->t && h->w.next_attempt_ms > 0 && h->w.next_attempt_ms - now < wait)
			wait = h->w.next_attempt_ms - now;
	}
	return wait < 0 ? 0 : (int)wait;
}

static void turn(struct events_hooks *hs)
{
	char *err = NULL;
	int running;

	if (clock_mono_ms() >= hs->next_reload_ms) {
		reload(hs);
		hs->next_reload_ms = clock_mono_ms() + RELOAD_MS;
	}
	/* Without webhooks there is nothing to look for. */
	if (hs->n > 0 && store_events_last_id(hs->st, &hs->last_id, &err) < 0)
		store_failed(hs, err);
	start_due(hs);
	curl_multi_perform(hs->multi, &running);
	collect(hs);
	curl_multi_poll(hs->multi, NULL, 0, wait_ms(hs), NULL);
	curl_multi_perform(hs->multi, &running);
	collect(hs);
}

static void *hooks_main(void *arg)
{
	struct events_hooks *hs = arg;

	while (!atomic_load(&hs->stop))
		turn(hs);
	return NULL;
}

struct events_hooks *events_hooks_new(struct store *st, const struct events_hooks_opts *o)
{
	struct events_hooks *hs;

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		log_err("event=start_error error=\"libcurl does not start: no "
		        "webhooks\"");
		return NULL;
	}
	hs = xcalloc(1, sizeof(*hs));
	hs->st = st;
	hs->o = *o;
	if (!hs->o.batch_max)
		hs->o.batch_max = HOOK_BATCH;
	hs->ca_file = o->ca_file ? xstrdup(o->ca_file) : NULL;
	if (!(hs->multi = curl_multi_init()))
		fatal("event=out_of_memory where=curl_multi_init");
	if (pthread_create(&hs->thread, NULL, hooks_main, hs) != 0)
		fatal("event=start_error error=\"cannot start the webhook thread\"");
	return hs;
}

void events_hooks_wake(void *arg)
{
	struct events_hooks *hs = arg;

	if (hs)
		curl_multi_wakeup(hs->multi);
}

void events_hooks_free(struct events_hooks *hs)
{
	if (!hs)
		return;
	atomic_store(&hs->stop, 1);
	curl_multi_wakeup(hs->multi);
	pthread_join(hs->thread, NULL);
	for (size_t i = 0; i < hs->n; i++)
		hook_free(hs, hs->v[i]);
	free(hs->v);
	curl_multi_cleanup(hs->multi);
	free(hs->ca_file);
	free(hs);
	curl_global_cleanup();
}
