/*
 * api_track: open and click tracking (docs/api.md "Tracking").
 *
 * The HMAC key lives in DATA_DIR/tracking.key: 32 random bytes, made once
 * (written to a temporary name, fsynced, then linked into place, so that a
 * crash never leaves a short key and two processes never make two), 0600,
 * read at first use and kept. With a cluster database the cluster's key
 * is used instead (api_track_key_share at start, store_keys.h), so that a
 * link made by one node works on every node; when the file's key is not
 * the cluster's, it is kept as a second key that the routes accept (links
 * this node sent before it joined), never used for new links, as are the
 * other nodes' own old keys (store_keys_verify). Losing it
 * only breaks the links of mail already sent; it is never sent anywhere.
 *
 * GET /t/o/{token} answers a 43-byte transparent GIF that no one may cache
 * and emits `opened`; GET /t/c/{token} answers 302 to the link the token
 * was made for and emits `clicked`. A token that was not made with the key
 * (forged, changed, cut) is 404, and nothing is emitted. The events
 * module keeps one opened event per recipient and one clicked per
 * recipient and link, counting repeats (docs/events.md).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/api_send.h"
#include "conf/conf.h"
#include "events/events.h"
#include "log/log.h"
#include "store/store_keys.h"
#include "track/track.h"

static pthread_mutex_t key_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned char key_bytes[TRACK_KEY_LEN];
static int key_loaded;
static unsigned char own_bytes[TRACK_KEY_LEN]; /* the file's, if not the cluster's */
static int has_own;
static int key_made; /* tracking.key made at this start: its key never used */

static int read_key(const char *path, unsigned char key[TRACK_KEY_LEN])
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, key, TRACK_KEY_LEN);
	close(fd);
	return n == TRACK_KEY_LEN ? 0 : -1;
}

/* A new key at path (unless another process made one first). */
static int make_key(const char *path, int *made)
{
	unsigned char key[TRACK_KEY_LEN];
	char *tmp = xasprintf("%s.%ld.tmp", path, (long)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600), rc = -1;

	randombytes_buf(key, sizeof(key));
	if (fd >= 0 && write(fd, key, sizeof(key)) == (ssize_t)sizeof(key) && fsync(fd) == 0)
		rc = (*made = link(tmp, path) == 0) || errno == EEXIST ? 0 : -1;
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	free(tmp);
	sodium_memzero(key, sizeof(key));
	return rc;
}

int api_track_key(const struct conf *c, unsigned char key[TRACK_KEY_LEN])
{
	char *path = xasprintf("%s/tracking.key", c->data_dir);
	int rc = 0;

	pthread_mutex_lock(&key_lock);
	if (!key_loaded && read_key(path, key_bytes) < 0 &&
	    (make_key(path, &key_made) < 0 || read_key(path, key_bytes) < 0)) {
		log_err("event=tracking_key_error path=%s error=%s", log_q(path),
		        log_q(strerror(errno)));
		rc = -1;
	}
	if (rc == 0) {
		key_loaded = 1;
		memcpy(key, key_bytes, TRACK_KEY_LEN);
	}
	pthread_mutex_unlock(&key_lock);
	free(path);
	return rc;
}

int api_track_key_share(const struct conf *c, struct store *st, char **err)
{
	unsigned char k[TRACK_KEY_LEN];
	int rc;

	*err = NULL;
	if (!store_keys_shared(st)) /* logs that it is not shared, as for the others */
		return store_shared_key(st, "tracking", NULL, 0, NULL, 0, err) < 0 ? -1 : 0;
	if (api_track_key(c, k) < 0) {
		*err = xasprintf("%s/tracking.key cannot be read or made", c->data_dir);
		return -1;
	}
	if ((rc = store_shared_key(st, "tracking", k, key_made, k, sizeof(k), err)) > 0) {
		pthread_mutex_lock(&key_lock);
		if (rc == 2)
			memcpy(own_bytes, key_bytes, sizeof(k));
		has_own = rc == 2;
		memcpy(key_bytes, k, sizeof(k));
		pthread_mutex_unlock(&key_lock);
	}
	sodium_memzero(k, sizeof(k));
	return rc < 0 ? -1 : 0;
}

char *api_track_url(const struct conf *c, const unsigned char key[TRACK_KEY_LEN],
                    const struct track_ref *r)
{
	const char *base = c->http_public_url ? c->http_public_url : "";
	size_t n = strlen(base);
	char *token = track_token_make(key, r);
	char *url = xasprintf("%.*s/t/%c/%s", (int)(n && base[n - 1] == '/' ? n - 1 : n), base,
	                      r->kind, token);

	free(token);
	return url;
}

/* ---- the routes ---- */

static const unsigned char pixel_gif[43] = {
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00,
    0x00, 0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00,
    0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b};

struct track_job {
	struct http_req *r;
	char kind;
	int ok;
	struct track_parsed t;
};

/* The node's own key from before it joined the cluster's: 1 and key, or 0. */
static int own_key(unsigned char key[TRACK_KEY_LEN])
{
	int has;

	pthread_mutex_lock(&key_lock);
	if ((has = has_own))
		memcpy(key, own_bytes, TRACK_KEY_LEN);
	pthread_mutex_unlock(&key_lock);
	return has;
}

/* A token under another node's own key (store_keys_verify). */
static int other_ok(const unsigned char *key, void *arg)
{
	struct track_job *j = arg;

	if (track_token_parse(key, http_req_param(j->r, "token"), j->kind, &j->t) == 0)
		return 1;
	track_parsed_free(&j->t);
	return 0;
}

static void track_check(void *arg)
{
	struct track_job *j = arg;
	unsigned char key[TRACK_KEY_LEN];
	const char *token = http_req_param(j->r, "token");

	j->ok = token && api_track_key(http_req_conf(j->r), key) == 0 &&
	        track_token_parse(key, token, j->kind, &j->t) == 0;
	if (!j->ok && token && own_key(key)) {
		track_parsed_free(&j->t);
		j->ok = track_token_parse(key, token, j->kind, &j->t) == 0;
	}
	if (!j->ok && token) {
		track_parsed_free(&j->t);
		j->ok = store_keys_verify("tracking", other_ok, j);
	}
	sodium_memzero(key, sizeof(key));
}

static void emit(struct track_job *j)
{
	struct events *ev = http_req_deps(j->r)->events;
	const char *ua = http_req_header(j->r, "User-Agent");

	if (!ev)
		return;
	events_emit(ev,
	            &(struct events_event){.type = j->kind == 'o' ? EVENT_OPENED : EVENT_CLICKED,
	                                   .account = j->t.account,
	                                   .message_id = j->t.message_id,
	                                   .recipient = j->t.recipient,
	                                   .url = j->kind == 'c' ? j->t.url : NULL,
	                                   .user_agent = ua,
	                                   .machine = j->kind == 'o' && track_machine_ua(ua)});
}

static void track_done(void *arg)
{
	struct track_job *j = arg;

	if (!j->ok) {
		http_reply_error(j->r, 404, "not_found", "no such tracking link");
	} else {
		emit(j);
		http_add_header(j->r, "Cache-Control",
		                "no-store, no-cache, must-revalidate, max-age=0");
		http_add_header(j->r, "Referrer-Policy", "no-referrer");
		if (j->kind == 'c') {
			http_add_header(j->r, "Location", j->t.url);
			http_reply(j->r, 302, "text/plain", "", 0);
		} else {
			http_reply(j->r, 200, "image/gif", pixel_gif, sizeof(pixel_gif));
		}
	}
	track_parsed_free(&j->t);
	free(j);
}

static void track_route(struct http_req *r, char kind)
{
	struct track_job *j = xcalloc(1, sizeof(*j));

	j->r = r;
	j->kind = kind;
	http_req_defer(r, track_check, track_done, j);
}

void api_h_track_open(struct http_req *r)
{
	track_route(r, 'o');
}

void api_h_track_click(struct http_req *r)
{
	track_route(r, 'c');
}
