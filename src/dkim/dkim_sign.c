/*
 * dkim_sign: signing with libopendkim. The signer owns one DKIM_LIB
 * (options set once, before any thread uses it) and the set of active
 * keys; contexts hold one libopendkim handle per key of their domain.
 *
 * Keys: a set is built off to the side from the store's active rows and
 * the key files, then swapped in under a write lock; dkim_ctx_new holds
 * the read lock only while it makes its handles, and libopendkim copies
 * the key, selector and domain into each handle, so a context never
 * points into a set. The set is kept as the store lists it (by domain,
 * creation, selector), so a domain's keys are adjacent and found by
 * binary search.
 *
 * libopendkim parses the private key again at the end of each message
 * (it has no way to take a parsed key); the key file is read and checked
 * once, the PEM text is what each handle gets, and the key parsed at load
 * is what libopendkim's parse returns (dkim_fastkey.c). The cost is in
 * docs/dkim.md.
 */
#include "dkim/dkim.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include <dkim.h>

#include "dkim/dkim_int.h"
#include "dkim/dkim_key.h"
#include "log/log.h"
#include "store/store.h"
#include "util/util.h"

/* Most signatures one message gets: a domain with more active keys signs
 * with the first ones (a rotation has at most two per algorithm). */
#define DKIM_MAX_SIGS 8

#define SIG_FIELD "DKIM-Signature: "

struct signkey {
	char *domain, *selector, *key_path;
	enum dkim_algo algo;
	char *secret;             /* the form dkim_sign() takes (dkim_key_derive) */
	struct dkim_fastkey fast; /* that key parsed once (dkim_fastkey.c) */
};

struct keyset {
	struct signkey *v;
	size_t n;
	size_t usable; /* keys with a secret: those that sign */
};

struct dkim_signer {
	DKIM_LIB *lib;
	char *data_dir;
	int ed25519; /* libopendkim can sign ed25519-sha256 */
	pthread_rwlock_t lock;
	struct keyset *keys; /* under lock */
};

struct dkim_ctx {
	DKIM *h[DKIM_MAX_SIGS];
	struct dkim_fastkey fast[DKIM_MAX_SIGS]; /* h[i]'s key, parsed */
	size_t n;
	struct dkim_arena *mem; /* every block libopendkim takes for h[] */
	int eoh;                /* dkim_eoh() done */
	int failed;             /* a handle failed: no signature from the context */
	char *id;               /* libopendkim keeps the pointer */
	char *domain;
};

const char *dkim_result_name(enum dkim_result r)
{
	switch (r) {
	case DKIM_SIGNED:
		return "signed";
	case DKIM_NO_FROM:
		return "no_from";
	case DKIM_MULTIPLE_FROM:
		return "multiple_from";
	case DKIM_NO_KEY:
		return "no_key";
	case DKIM_HEADER_TOO_LARGE:
		return "header_too_large";
	case DKIM_FAILED:
		return "failed";
	}
	return "unknown";
}

/* ---- key sets ------------------------------------------------------------------ */

static void keyset_free(struct keyset *ks)
{
	if (ks == NULL)
		return;
	for (size_t i = 0; i < ks->n; i++) {
		free(ks->v[i].domain);
		free(ks->v[i].selector);
		free(ks->v[i].key_path);
		dkim_key_wipe(ks->v[i].secret);
		dkim_fastkey_clear(&ks->v[i].fast);
	}
	free(ks->v);
	free(ks);
}

/* 1 if the rows are the keys of ks, in order. */
static int keyset_same(const struct keyset *ks, const struct store_dkim_key *r, size_t n)
{
	if (ks == NULL || ks->n != n)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (strcmp(ks->v[i].domain, r[i].domain) ||
		    strcmp(ks->v[i].selector, r[i].selector) ||
		    strcmp(dkim_algo_name(ks->v[i].algo), r[i].algorithm) ||
		    strcmp(ks->v[i].key_path, r[i].key_path))
			return 0;
	return 1;
}

/* The signing form of one row's key; NULL (logged) when it cannot sign. */
static char *key_secret(const struct dkim_signer *s, const struct store_dkim_key *r, int algo)
{
	char *path = dkim_key_path(s->data_dir, r->key_path), *pem = NULL, *secret = NULL;
	char *err = NULL;

	if (algo < 0)
		err = xasprintf("unknown algorithm '%s'", r->algorithm);
	else if (algo == DKIM_ALGO_ED25519 && !s->ed25519)
		err = xstrdup("this libopendkim cannot sign with ed25519");
	else if (r->key_pem) /* from the database: made on any node of the cluster */
		dkim_key_derive(r->key_pem, (enum dkim_algo)algo, NULL, &secret, &err);
	else if (dkim_key_read(path, &pem, &err) == 0)
		dkim_key_derive(pem, (enum dkim_algo)algo, NULL, &secret, &err);
	if (secret == NULL)
		log_err("event=dkim_key_error domain=%s selector=%s path=%s error=%s",
		        log_q(r->domain), log_q(r->selector), log_q(path), log_q(err));
	dkim_key_wipe(pem);
	free(err);
	free(path);
	return secret;
}

/* Every usable key of rows[0..n); the rows' order is kept. */
static struct keyset *keyset_build(const struct dkim_signer *s, const struct store_dkim_key *r,
                                   size_t n)
{
	struct keyset *ks = xcalloc(1, sizeof *ks);

	ks->v = xcalloc(n ? n : 1, sizeof *ks->v);
	for (size_t i = 0; i < n; i++) {
		int algo = dkim_algo_parse(r[i].algorithm);
		char *secret = key_secret(s, &r[i], algo);
		struct signkey *k = &ks->v[ks->n];

		k->domain = xstrdup(r[i].domain);
		k->selector = xstrdup(r[i].selector);
		k->key_path = xstrdup(r[i].key_path);
		k->algo = (enum dkim_algo)(algo < 0 ? 0 : algo);
		k->secret = secret; /* NULL: kept, so the set compares equal, never used */
		if (secret && dkim_fastkey_init(&k->fast, secret) < 0)
			log_warn("event=dkim_key_slow domain=%s selector=%s", log_q(k->domain),
			         log_q(k->selector));
		ks->usable += secret != NULL;
		ks->n++;
	}
	return ks;
}

int dkim_signer_refresh(struct dkim_signer *s, struct store *st, int force, char **err)
{
	struct store_dkim_key *rows;
	struct keyset *ks, *old;
	size_t n;
	int same;

	if (store_dkim_list(st, NULL, "active", &rows, &n, err) < 0)
		return -1;
	pthread_rwlock_rdlock(&s->lock);
	same = keyset_same(s->keys, rows, n);
	pthread_rwlock_unlock(&s->lock);
	if (same && !force) {
		store_dkim_keys_free(rows, n);
		return 0;
	}
	ks = keyset_build(s, rows, n);
	store_dkim_keys_free(rows, n);
	pthread_rwlock_wrlock(&s->lock);
	old = s->keys;
	s->keys = ks;
	pthread_rwlock_unlock(&s->lock);
	keyset_free(old);
	log_info("event=dkim_keys_loaded keys=%zu", ks->n);
	return 1;
}

size_t dkim_signer_key_count(struct dkim_signer *s)
{
	size_t n;

	pthread_rwlock_rdlock(&s->lock);
	n = s->keys ? s->keys->usable : 0;
	pthread_rwlock_unlock(&s->lock);
	return n;
}

/* Index of the domain's first key (keys are sorted by domain), or ks->n. */
static size_t keyset_find(const struct keyset *ks, const char *domain)
{
	size_t lo = 0, hi = ks->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (strcmp(ks->v[mid].domain, domain) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < ks->n && strcmp(ks->v[lo].domain, domain) == 0 ? lo : ks->n;
}

int dkim_signer_has_key(struct dkim_signer *s, const char *domain)
{
	const struct keyset *ks;
	int found = 0;

	pthread_rwlock_rdlock(&s->lock);
	ks = s->keys;
	for (size_t i = ks ? keyset_find(ks, domain) : 0;
	     ks && i < ks->n && !found && !strcmp(ks->v[i].domain, domain); i++)
		found = ks->v[i].secret != NULL;
	pthread_rwlock_unlock(&s->lock);
	return found;
}

/* ---- the signer ------------------------------------------------------------------ */

/* The list options take the array itself (libopendkim copies it); len is
 * the size of a pointer. */
static int lib_option(DKIM_LIB *lib, int opt, const char *const *names)
{
	return dkim_options(lib, DKIM_OP_SETOPT, opt, (void *)names, sizeof names);
}

struct dkim_signer *dkim_signer_new(const char *data_dir, char **err)
{
	struct dkim_signer *s = xcalloc(1, sizeof *s);

	s->lib = dkim_init(dkim_arena_malloc, dkim_arena_free);
	if (s->lib == NULL || lib_option(s->lib, DKIM_OPTS_SIGNHDRS, dkim_signed_names) ||
	    lib_option(s->lib, DKIM_OPTS_OVERSIGNHDRS, dkim_oversigned_names)) {
		if (err)
			*err = xstrdup("cannot set up libopendkim");
		if (s->lib)
			dkim_close(s->lib);
		free(s);
		return NULL;
	}
	s->ed25519 = dkim_libfeature(s->lib, DKIM_FEATURE_ED25519);
	s->data_dir = xstrdup(data_dir);
	pthread_rwlock_init(&s->lock, NULL);
	return s;
}

void dkim_signer_free(struct dkim_signer *s)
{
	if (s == NULL)
		return;
	keyset_free(s->keys);
	pthread_rwlock_destroy(&s->lock);
	dkim_close(s->lib);
	free(s->data_dir);
	free(s);
}

/* ---- contexts ---------------------------------------------------------------------- */

static void ctx_fail(struct dkim_ctx *c, size_t i, const char *what, DKIM_STAT st)
{
	const char *e = dkim_geterror(c->h[i]);

	log_err("queue=%s event=dkim_error domain=%s step=%s error=%s", c->id, log_q(c->domain),
	        what, log_q(e && *e ? e : dkim_getresultstr(st)));
	c->failed = 1;
}

/* One handle per usable key of the domain; the caller holds s->lock. */
static void ctx_handles(struct dkim_ctx *c, struct dkim_signer *s, const char *domain)
{
	const struct keyset *ks = s->keys;
	size_t i = ks ? keyset_find(ks, domain) : 0;

	for (; ks && i < ks->n && c->n < DKIM_MAX_SIGS && !strcmp(ks->v[i].domain, domain); i++) {
		const struct signkey *k = &ks->v[i];
		DKIM_STAT st = DKIM_STAT_OK;
		DKIM *h;

		if (k->secret == NULL)
			continue;
		h = dkim_sign(s->lib, (const u_char *)c->id, c->mem, (dkim_sigkey_t)k->secret,
		              (const u_char *)k->selector, (const u_char *)k->domain,
		              DKIM_CANON_RELAXED, DKIM_CANON_RELAXED,
		              k->algo == DKIM_ALGO_ED25519 ? DKIM_SIGN_ED25519SHA256
		                                           : DKIM_SIGN_RSASHA256,
		              -1, &st);
		if (h == NULL) {
			log_err(
			    "queue=%s event=dkim_error domain=%s selector=%s step=sign error=%s",
			    c->id, log_q(domain), k->selector, log_q(dkim_getresultstr(st)));
			continue;
		}
		dkim_fastkey_copy(&c->fast[c->n], &k->fast);
		c->h[c->n++] = h;
	}
}

struct dkim_ctx *dkim_ctx_new(struct dkim_signer *s, const char *domain, const char *id,
                              enum dkim_result *res)
{
	struct dkim_ctx *c = xcalloc(1, sizeof *c);

	c->id = xstrdup(id && *id ? id : "NOQUEUE");
	c->domain = xstrdup(domain);
	c->mem = dkim_arena_new();
	pthread_rwlock_rdlock(&s->lock);
	ctx_handles(c, s, domain);
	pthread_rwlock_unlock(&s->lock);
	if (c->n == 0) {
		*res = DKIM_NO_KEY;
		dkim_ctx_free(c);
		return NULL;
	}
	*res = DKIM_SIGNED;
	return c;
}

int dkim_ctx_header(struct dkim_ctx *c, const char *field, size_t len)
{
	struct dkim_field f;
	size_t used;

	if (c->failed || c->eoh)
		return -1;
	if (!dkim_hdr_next(field, len, &f, &used) || !dkim_hdr_signed(f.start, f.name_len))
		return 0;
	for (size_t i = 0; i < c->n; i++) {
		DKIM_STAT st = dkim_header(c->h[i], (u_char *)field, len);
		if (st != DKIM_STAT_OK) {
			ctx_fail(c, i, "header", st);
			return -1;
		}
	}
	return 0;
}

static int ctx_eoh(struct dkim_ctx *c)
{
	if (c->eoh)
		return 0;
	c->eoh = 1;
	for (size_t i = 0; i < c->n; i++) {
		DKIM_STAT st = dkim_eoh(c->h[i]);
		if (st != DKIM_STAT_OK) {
			ctx_fail(c, i, "eoh", st);
			return -1;
		}
	}
	return 0;
}

int dkim_ctx_body(struct dkim_ctx *c, const char *p, size_t n)
{
	if (c->failed || ctx_eoh(c) < 0)
		return -1;
	for (size_t i = 0; i < c->n && n > 0; i++) {
		DKIM_STAT st = dkim_body(c->h[i], (u_char *)p, n);
		if (st != DKIM_STAT_OK) {
			ctx_fail(c, i, "body", st);
			return -1;
		}
	}
	return 0;
}

/* Signs with handle i and appends its field to out; -1 on failure
 * (logged). */
static int ctx_sign_one(struct dkim_ctx *c, size_t i, struct buf *out)
{
	u_char *sig = NULL;
	size_t len = 0;
	DKIM_STAT st;

	dkim_fastkey_enter(&c->fast[i]);
	st = dkim_eom(c->h[i], NULL);
	dkim_fastkey_leave();

	if (st == DKIM_STAT_OK)
		st = dkim_getsighdr_d(c->h[i], strlen(SIG_FIELD), &sig, &len);
	if (st != DKIM_STAT_OK) {
		ctx_fail(c, i, "eom", st);
		return -1;
	}
	buf_puts(out, SIG_FIELD);
	buf_append(out, sig, len);
	buf_puts(out, "\r\n");
	return 0;
}

/* A key that fails here (its file was checked when it was loaded, so this
 * is rare) costs its own signature only: the others still go out. */
enum dkim_result dkim_ctx_finish(struct dkim_ctx *c, struct buf *out)
{
	size_t good = 0;

	if (c->failed || ctx_eoh(c) < 0)
		return DKIM_FAILED;
	for (size_t i = 0; i < c->n; i++)
		good += ctx_sign_one(c, i, out) == 0;
	return good ? DKIM_SIGNED : DKIM_FAILED;
}

void dkim_ctx_free(struct dkim_ctx *c)
{
	if (c == NULL)
		return;
	dkim_arena_repair(c->mem);
	for (size_t i = 0; i < c->n; i++) {
		dkim_free(c->h[i]);
		dkim_fastkey_clear(&c->fast[i]);
	}
	dkim_arena_free_all(c->mem);
	free(c->id);
	free(c->domain);
	free(c);
}
