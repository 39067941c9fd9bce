/*
 * http_auth: "Authorization: Bearer KEY" for every route that needs a key.
 *
 * The key's SHA-256 is looked up in the store by a worker (never on the
 * loop). A found key is remembered for KEY_CACHE_MS on the loop, so that a
 * busy client does not cost a database read per request, and a revoked key
 * stops working within that time (SPEC: admin commands take effect within
 * a second). Cache entries are compared in constant time. Unknown keys are
 * never cached: each try costs the caller a lookup, not us a memory slot.
 *
 * Last use of each key is noted on the loop and written in one transaction
 * every TOUCH_FLUSH_S seconds (and at exit), never per request.
 */
#include <event2/event.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_int.h"
#include "log/log.h"
#include "store/store.h"
#include "work/work.h"

#define KEY_CACHE_SLOTS 64
#define KEY_CACHE_MS    500
#define TOUCH_MAX       256
#define TOUCH_FLUSH_S   5

struct cached_key {
	unsigned char hash[APIKEY_HASH_LEN];
	struct http_auth auth;
	uint64_t until_ms; /* monotonic; 0: empty */
};

struct touch {
	int64_t id, t;
};

struct http_keys {
	struct http *h;
	struct cached_key cache[KEY_CACHE_SLOTS];
	size_t next_slot;
	struct touch touched[TOUCH_MAX];
	size_t n_touched;
	struct touch *writing; /* handed to a worker */
	size_t n_writing;
	struct event *ev_flush;
};

/* ---- the cache ----------------------------------------------------------------- */

static const struct http_auth *cache_find(struct http_keys *k, const unsigned char *hash)
{
	uint64_t now = clock_mono_ms();

	for (size_t i = 0; i < KEY_CACHE_SLOTS; i++)
		if (k->cache[i].until_ms > now &&
		    sodium_memcmp(k->cache[i].hash, hash, APIKEY_HASH_LEN) == 0)
			return &k->cache[i].auth;
	return NULL;
}

static void cache_put(struct http_keys *k, const unsigned char *hash, const struct http_auth *a)
{
	struct cached_key *slot = &k->cache[k->next_slot++ % KEY_CACHE_SLOTS];

	memcpy(slot->hash, hash, APIKEY_HASH_LEN);
	slot->auth = *a;
	slot->until_ms = clock_mono_ms() + KEY_CACHE_MS;
}

/* ---- last use ------------------------------------------------------------------------ */

static void touch_written(void *arg)
{
	struct http_keys *k = arg;

	free(k->writing);
	k->writing = NULL;
	k->n_writing = 0;
}

static void touch_write(void *arg)
{
	struct http_keys *k = arg;
	int64_t ids[TOUCH_MAX], times[TOUCH_MAX];
	char *err = NULL;

	for (size_t i = 0; i < k->n_writing; i++)
		ids[i] = k->writing[i].id, times[i] = k->writing[i].t;
	if (store_apikey_touch(k->h->deps.store, ids, times, k->n_writing, &err) < 0) {
		log_warn("event=apikey_touch_error error=%s", log_q(err));
		free(err);
	}
}

static void touch_flush(struct http_keys *k)
{
	if (k->writing || k->n_touched == 0 || !k->h->deps.work)
		return;
	k->writing = xmalloc(k->n_touched * sizeof(*k->writing));
	memcpy(k->writing, k->touched, k->n_touched * sizeof(*k->writing));
	k->n_writing = k->n_touched;
	k->n_touched = 0;
	work_submit(k->h->deps.work, touch_write, touch_written, k);
}

static void on_flush_timer(evutil_socket_t fd, short what, void *arg)
{
	touch_flush(arg);
}

static void touch(struct http_keys *k, int64_t id)
{
	int64_t now = clock_now_s();
	size_t i;

	for (i = 0; i < k->n_touched && k->touched[i].id != id; i++)
		;
	if (i == k->n_touched) {
		if (i == TOUCH_MAX)
			return; /* full until the next flush: a last-use time is a hint */
		k->n_touched++;
	}
	k->touched[i].id = id;
	k->touched[i].t = now;
}

struct http_keys *http_keys_new(struct http *h)
{
	struct http_keys *k = xcalloc(1, sizeof(*k));
	struct timeval tv = {TOUCH_FLUSH_S, 0};

	k->h = h;
	k->ev_flush = event_new(h->base, -1, EV_PERSIST, on_flush_timer, k);
	event_add(k->ev_flush, &tv);
	return k;
}

void http_keys_free(struct http_keys *k)
{
	if (!k)
		return;
	event_free(k->ev_flush);
	if (k->n_touched && k->h->deps.store) {
		k->writing = xmalloc(k->n_touched * sizeof(*k->writing));
		memcpy(k->writing, k->touched, k->n_touched * sizeof(*k->writing));
		k->n_writing = k->n_touched;
		touch_write(k);
	}
	free(k->writing);
	free(k);
}

/* ---- the check ------------------------------------------------------------------------------ */

static int refuse(struct http_req *r, const char *why)
{
	log_info("http=%s event=http_auth_failed ip=%s reason=%s", r->conn->id, r->conn->ip,
	         log_q(why));
	http_add_header(r, "WWW-Authenticate", "Bearer realm=\"posthorn\"");
	http_reply_error(r, 401, "unauthorized", "%s", why);
	return 0;
}

/* The key is good: 1 go on, 0 refused here (a route for admin keys). */
static int admit(struct http_req *r, const struct http_auth *a)
{
	r->auth = *a;
	r->authed = 1;
	touch(r->conn->h->keys, a->key_id);
	if (r->match.route->auth == HTTP_AUTH_ADMIN && !a->admin) {
		http_reply_error(r, 403, "forbidden",
		                 "this needs an admin key (apikey create --admin)");
		return 0;
	}
	return 1;
}

struct lookup_job {
	struct http_req *r;
	unsigned char hash[APIKEY_HASH_LEN];
	struct store_apikey key;
	int found; /* 1, 0, -1 */
	char *err;
};

static void lookup_work(void *arg)
{
	struct lookup_job *j = arg;

	j->found = store_apikey_lookup(j->r->conn->h->deps.store, j->hash, &j->key, &j->err);
}

static void lookup_done(void *arg)
{
	struct lookup_job *j = arg;
	struct http_req *r = j->r;
	struct http_auth a = {0};
	int ok = 0;

	if (j->found < 0) {
		log_err("http=%s event=apikey_lookup_error error=%s", r->conn->id, log_q(j->err));
		http_reply_error(r, 503, "unavailable", "cannot check the API key now");
	} else if (j->found == 0) {
		refuse(r, "invalid or revoked API key");
	} else {
		a.key_id = j->key.id;
		a.admin = j->key.admin;
		snprintf(a.account, sizeof(a.account), "%s", j->key.account);
		cache_put(r->conn->h->keys, j->hash, &a);
		ok = admit(r, &a);
	}
	free(j->err);
	free(j);
	http_conn_authed(r->conn, ok);
}

int http_auth_check(struct http_req *r)
{
	const char *v = http_req_header(r, "Authorization");
	const struct http_auth *cached;
	struct lookup_job *j;

	if (!v)
		return refuse(r, "missing Authorization header: send 'Authorization: Bearer KEY'");
	if (ascii_ncasecmp(v, "Bearer ", 7) != 0)
		return refuse(r, "the Authorization header must be 'Bearer KEY'");
	for (v += 7; *v == ' '; v++)
		;
	if (!store_apikey_format_ok(v))
		return refuse(r, "invalid or revoked API key");
	j = xcalloc(1, sizeof(*j));
	j->r = r;
	store_apikey_hash(v, j->hash);
	if ((cached = cache_find(r->conn->h->keys, j->hash))) {
		free(j);
		return admit(r, cached);
	}
	http_conn_defer(r->conn, lookup_work, lookup_done, j);
	return -1;
}
