/*
 * unsub.c: the server's half of one-click unsubscribe (unsub.h): the
 * secret, and which accounts want the header.
 *
 * The secret is DATA_DIR/unsubscribe.key, 32 random bytes, mode 0600. It
 * is made once: written to a temporary name, fsynced, then link()ed to
 * its name (which fails if another process made it first: that one is
 * then read) and the directory fsynced, so that links already sent keep
 * working after a power cut. It never changes: rotating it would break
 * every link in mail already delivered. With a cluster database the
 * cluster's key replaces it (unsub_share_key, store_keys.h): the first
 * node's, so that a link made by one node works on every node. When the
 * file's key is not the cluster's, it is kept as a second key that
 * unsub_verify() accepts (links this node sent before it joined), never
 * used for new links; so are the other nodes' own old keys, which they
 * store in the database (store_keys_verify: no database wait here).
 *
 * The accounts with the flag are read from the store (at start, then in
 * the work pool once a second) and kept as a sorted array that only the
 * loop thread reads (a binary search per message), so the accept path
 * never waits on the database.
 */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log/log.h"
#include "store/store.h"
#include "store/store_keys.h"
#include "unsub/unsub.h"
#include "util/util.h"
#include "work/work.h"

#define KEY_FILE "unsubscribe.key"

struct unsub {
	unsigned char key[UNSUB_KEY_LEN];
	unsigned char own[UNSUB_KEY_LEN]; /* the file's, when it is not the cluster's */
	int has_own;
	int made;       /* the file was made at this start: its key never used */
	char *base_url; /* public_url when it is https, else NULL */
	/* the watch (loop thread) */
	struct event_base *base;
	struct work_pool *work;
	struct store *st;
	struct event *timer;
	int busy, stopped;
	char **on; /* accounts with the flag, sorted */
	size_t n_on;
};

/* ---- the secret -------------------------------------------------------------- */

static int read_key(int dirfd, unsigned char key[UNSUB_KEY_LEN], char **err)
{
	int fd = openat(dirfd, KEY_FILE, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	ssize_t r = -1;

	if (fd < 0)
		return -1; /* errno: ENOENT means "make it" */
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == UNSUB_KEY_LEN)
		r = read(fd, key, UNSUB_KEY_LEN);
	close(fd);
	if (r == UNSUB_KEY_LEN)
		return 0;
	*err = xasprintf(KEY_FILE ": not a %d-byte key file", UNSUB_KEY_LEN);
	errno = EINVAL;
	return -1;
}

/* A new key under a temporary name, made durable, then linked to its name;
 * EEXIST when another process linked its own first. */
static int make_key(int dirfd)
{
	unsigned char key[UNSUB_KEY_LEN];
	char tmp[64];
	int fd, rc = -1, e;

	snprintf(tmp, sizeof(tmp), "." KEY_FILE ".%ld", (long)getpid());
	randombytes_buf(key, sizeof(key));
	unlinkat(dirfd, tmp, 0);
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd >= 0) {
		rc = write(fd, key, sizeof(key)) == (ssize_t)sizeof(key) && fsync(fd) == 0 ? 0 : -1;
		close(fd);
	}
	if (rc == 0)
		rc = linkat(dirfd, tmp, dirfd, KEY_FILE, 0);
	e = errno;
	unlinkat(dirfd, tmp, 0);
	if (rc == 0)
		rc = fsync(dirfd);
	sodium_memzero(key, sizeof(key));
	errno = rc == 0 ? 0 : e;
	return rc;
}

static int load_key(const char *data_dir, unsigned char key[UNSUB_KEY_LEN], int *made, char **err)
{
	int dirfd = open(data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc = -1;

	if (dirfd < 0) {
		*err = xasprintf("%s: %s", data_dir, strerror(errno));
		return -1;
	}
	if (read_key(dirfd, key, err) == 0)
		rc = 0;
	else if (!*err && errno == ENOENT && ((*made = make_key(dirfd) == 0) || errno == EEXIST))
		rc = read_key(dirfd, key, err);
	if (rc < 0 && !*err)
		*err = xasprintf("%s/" KEY_FILE ": %s", data_dir, strerror(errno));
	close(dirfd);
	return rc;
}

struct unsub *unsub_new(const char *data_dir, const char *public_url, char **err)
{
	struct unsub *u = xcalloc(1, sizeof(*u));

	*err = NULL;
	if (sodium_init() < 0 || load_key(data_dir, u->key, &u->made, err) < 0) {
		if (!*err)
			*err = xstrdup("libsodium initialisation failed");
		free(u);
		return NULL;
	}
	if (unsub_url_https(public_url))
		u->base_url = xstrdup(public_url);
	return u;
}

int unsub_share_key(struct unsub *u, struct store *st, char **err)
{
	int rc;

	*err = NULL;
	memcpy(u->own, u->key, sizeof(u->key));
	rc = store_shared_key(st, "unsubscribe", u->own, u->made, u->key, sizeof(u->key), err);
	u->has_own = rc == 2;
	if (!u->has_own)
		sodium_memzero(u->own, sizeof(u->own));
	return rc < 0 ? -1 : 0;
}

int unsub_active(const struct unsub *u)
{
	return u && u->base_url;
}

int unsub_fields(const struct unsub *u, const char *account, const char *rcpt, struct buf *out)
{
	if (!unsub_active(u))
		return -1;
	return unsub_fields_for(u->key, u->base_url, account, rcpt, out);
}

struct other_check {
	const char *token;
	char *account, *rcpt;
};

static int other_ok(const unsigned char *key, void *arg)
{
	struct other_check *c = arg;

	return unsub_token_parse(key, c->token, c->account, c->rcpt) == UNSUB_TOKEN_OK;
}

enum unsub_token_result unsub_verify(const struct unsub *u, const char *token,
                                     char account[UNSUB_ACCOUNT_MAX + 1],
                                     char rcpt[UNSUB_ADDR_MAX + 1])
{
	enum unsub_token_result r = unsub_token_parse(u->key, token, account, rcpt);

	struct other_check c = {token, account, rcpt};

	if (r == UNSUB_TOKEN_FORGED && u->has_own)
		r = unsub_token_parse(u->own, token, account, rcpt);
	if (r == UNSUB_TOKEN_FORGED && store_keys_verify("unsubscribe", other_ok, &c))
		r = UNSUB_TOKEN_OK;
	return r;
}

/* ---- the accounts with the flag ------------------------------------------------------ */

struct watch_job {
	struct unsub *u;
	char **names;
	size_t n;
	int failed;
};

static void watch_read(void *arg)
{
	struct watch_job *j = arg;
	char *err = NULL;

	if (store_accounts_unsubscribe(j->u->st, &j->names, &j->n, &err) < 0) {
		log_warn("event=unsub_accounts_error error=%s", log_q(err));
		free(err);
		j->failed = 1;
	}
}

static int same_names(char **a, size_t na, char **b, size_t nb)
{
	if (na != nb)
		return 0;
	for (size_t i = 0; i < na; i++)
		if (strcmp(a[i], b[i]) != 0)
			return 0;
	return 1;
}

static void watch_done(void *arg)
{
	struct watch_job *j = arg;
	struct unsub *u = j->u;

	u->busy = 0;
	if (j->failed || u->stopped || same_names(u->on, u->n_on, j->names, j->n)) {
		store_strv_free(j->names, j->n);
	} else {
		store_strv_free(u->on, u->n_on);
		u->on = j->names, u->n_on = j->n;
		log_info("event=unsub_accounts accounts=%zu", u->n_on);
	}
	free(j);
}

static void watch_tick(evutil_socket_t fd, short what, void *arg)
{
	struct unsub *u = arg;
	struct watch_job *j;

	if (u->busy || u->stopped)
		return;
	j = xcalloc(1, sizeof(*j));
	j->u = u;
	u->busy = 1;
	work_submit(u->work, watch_read, watch_done, j);
}

void unsub_watch(struct unsub *u, struct event_base *base, struct work_pool *work, struct store *st,
                 uint64_t every_ms)
{
	struct timeval tv = {(time_t)(every_ms / 1000), (suseconds_t)(every_ms % 1000) * 1000};
	struct watch_job first = {.u = u};

	if (!unsub_active(u))
		return; /* no header can be added: the flag does not matter */
	u->base = base, u->work = work, u->st = st;
	/* the first read before any session: mail of the first second has it too */
	watch_read(&first);
	if (!first.failed) {
		u->on = first.names, u->n_on = first.n;
		log_info("event=unsub_accounts accounts=%zu", u->n_on);
	}
	u->timer = event_new(base, -1, EV_PERSIST, watch_tick, u);
	event_add(u->timer, &tv);
}

static int cmp_name(const void *key, const void *elem)
{
	return strcmp(key, *(char *const *)elem);
}

int unsub_account_on(const struct unsub *u, const char *account)
{
	return unsub_active(u) && u->n_on &&
	       bsearch(account, u->on, u->n_on, sizeof(*u->on), cmp_name) != NULL;
}

void unsub_stop(struct unsub *u)
{
	if (!u)
		return;
	u->stopped = 1;
	if (u->timer)
		event_del(u->timer);
}

void unsub_free(struct unsub *u)
{
	if (!u)
		return;
	if (u->timer)
		event_free(u->timer);
	store_strv_free(u->on, u->n_on);
	free(u->base_url);
	sodium_memzero(u->key, sizeof(u->key));
	sodium_memzero(u->own, sizeof(u->own));
	free(u);
}
