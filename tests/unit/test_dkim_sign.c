/*
 * Unit tests for the signer (dkim_sign.c, dkim_msg.c): which messages are
 * signed and with which keys, result codes, the shape of the
 * DKIM-Signature fields (h= with From oversigned, folding, CRLF), the
 * same signature whatever the chunking, key reloads, and many threads
 * signing with one signer while its keys are swapped. That the
 * signatures verify is for the real verifiers (tests/e2e/test_dkim_sign.py).
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "dkim/dkim.h"
#include "dkim/dkim_int.h"
#include "store/store.h"
#include "util/util.h"

#include "store_fixture.h"

struct env {
	struct fixture *f;
	struct store *st;
	struct dkim_signer *s;
};

static void keygen(struct env *e, const char *domain, const char *sel, enum dkim_algo a,
                   enum dkim_state state)
{
	struct dkim_key_info k;
	char *err = NULL;

	if (dkim_keygen(e->st, e->f->data, domain, sel, a, state, &k, &err) != 0)
		fail_msg("keygen: %s", err);
	dkim_key_info_clear(&k);
}

static int setup(void **state)
{
	struct env *e = xcalloc(1, sizeof *e);
	char *err = NULL;

	if ((e->f = fixture_new("dkimsign")) == NULL)
		return -1;
	e->st = open_ok(e->f);
	if ((e->s = dkim_signer_new(e->f->data, &err)) == NULL)
		return -1;
	keygen(e, "rsa.example", "r1", DKIM_ALGO_RSA2048, DKIM_STATE_ACTIVE);
	keygen(e, "dual.example", "r1", DKIM_ALGO_RSA2048, DKIM_STATE_ACTIVE);
	keygen(e, "dual.example", "e1", DKIM_ALGO_ED25519, DKIM_STATE_ACTIVE);
	keygen(e, "pend.example", "p1", DKIM_ALGO_ED25519, DKIM_STATE_PENDING);
	if (dkim_signer_refresh(e->s, e->st, 0, &err) != 1)
		return -1;
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;

	dkim_signer_free(e->s);
	store_close(e->st);
	fixture_free(e->f);
	free(e);
	return 0;
}

/* Signs msg fed `chunk` bytes at a time; the fields go to *out. */
static enum dkim_result sign(struct dkim_signer *s, const char *msg, size_t chunk, char **out,
                             char *domain)
{
	struct dkim_msg *m = dkim_msg_new(s, "T1");
	struct buf b;
	size_t len = strlen(msg);
	enum dkim_result r;

	for (size_t off = 0; off < len; off += chunk)
		dkim_msg_write(m, msg + off, len - off < chunk ? len - off : chunk);
	buf_init(&b);
	buf_puts(&b, "");
	r = dkim_msg_finish(m, &b);
	if (domain)
		strcpy(domain, dkim_msg_domain(m));
	dkim_msg_free(m);
	*out = b.data;
	return r;
}

/* The value of tag t= in the first signature of fields, blanks and line
 * ends taken out; NULL when it has none. */
static char *tag(const char *fields, const char *t)
{
	const char *p = strchr(fields, ':') + 1, *end = strstr(fields, "\r\n");
	struct buf b;

	while (end && (end[2] == '\t' || end[2] == ' ')) /* the field's last line */
		end = strstr(end + 2, "\r\n");
	buf_init(&b);
	buf_puts(&b, "");
	for (; p < end; p++)
		if (!strchr(" \t\r\n", *p))
			buf_append(&b, p, 1);
	for (char *s = b.data, *semi; s && *s; s = semi ? semi + 1 : NULL) {
		semi = strchr(s, ';');
		if (semi)
			*semi = '\0';
		if (strncmp(s, t, strlen(t)) == 0 && s[strlen(t)] == '=') {
			char *v = xstrdup(s + strlen(t) + 1);
			buf_free(&b);
			return v;
		}
	}
	buf_free(&b);
	return NULL;
}

static size_t count(const char *s, const char *what)
{
	size_t n = 0;

	for (const char *p = s; (p = strstr(p, what)) != NULL; p += strlen(what))
		n++;
	return n;
}

#define MSG                                                                                        \
	"Received: from client by relay\r\n"                                                       \
	"From: Jane <jane@rsa.example>\r\n"                                                        \
	"To: bob@example.net\r\n"                                                                  \
	"X-Mailer: test\r\n"                                                                       \
	"Subject: hello\r\n there\r\n"                                                             \
	"\r\n"                                                                                     \
	"Body line one.\r\n"                                                                       \
	"Body line two.\r\n"

static void test_sign_shape(void **state)
{
	struct env *e = *state;
	char *out, *h, domain[DKIM_DOMAIN_MAX + 1];

	assert_int_equal(sign(e->s, MSG, 4096, &out, domain), DKIM_SIGNED);
	assert_string_equal(domain, "rsa.example");
	assert_true(strncmp(out, "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;", 53) == 0);
	assert_int_equal(count(out, "DKIM-Signature:"), 1);
	/* folded with CRLF + tab, ends with CRLF, no bare LF */
	assert_int_equal(out[strlen(out) - 2], '\r');
	assert_int_equal(out[strlen(out) - 1], '\n');
	assert_int_equal(count(out, "\n"), count(out, "\r\n"));
	assert_int_equal(count(out, "\r\n"), count(out, "\r\n\t") + 1);
	/* the signed fields present, in order, From once more; not the others */
	h = tag(out, "h");
	assert_string_equal(h, "From:To:Subject:From");
	free(h);
	h = tag(out, "d");
	assert_string_equal(h, "rsa.example");
	free(h);
	h = tag(out, "s");
	assert_string_equal(h, "r1");
	free(h);
	free(out);
}

static void test_sign_dual(void **state)
{
	struct env *e = *state;
	char *msg = xasprintf("From: a@DUAL.example\r\nTo: b@x.example\r\n\r\nhi\r\n"), *out;

	assert_int_equal(sign(e->s, msg, 4096, &out, NULL), DKIM_SIGNED);
	assert_int_equal(count(out, "DKIM-Signature:"), 2);
	assert_int_equal(count(out, "a=rsa-sha256;"), 1);
	assert_int_equal(count(out, "a=ed25519-sha256;"), 1);
	assert_int_equal(count(out, "d=dual.example;"), 2);
	free(out);
	free(msg);
}

/* Byte by byte or whole, the message hashes the same (bh=, h=). */
static void test_sign_chunking(void **state)
{
	struct env *e = *state;
	size_t chunks[] = {1, 2, 3, 7, 64, 100000};
	char *ref, *ref_bh, *ref_h;

	assert_int_equal(sign(e->s, MSG, 100000, &ref, NULL), DKIM_SIGNED);
	ref_bh = tag(ref, "bh");
	ref_h = tag(ref, "h");
	for (size_t i = 0; i < ARRAY_LEN(chunks); i++) {
		char *out, *bh, *h;
		assert_int_equal(sign(e->s, MSG, chunks[i], &out, NULL), DKIM_SIGNED);
		bh = tag(out, "bh");
		h = tag(out, "h");
		assert_string_equal(bh, ref_bh);
		assert_string_equal(h, ref_h);
		free(bh);
		free(h);
		free(out);
	}
	free(ref_bh);
	free(ref_h);
	free(ref);
}

static const struct result_case {
	const char *msg;
	enum dkim_result want;
	const char *domain;
} result_cases[] = {
    {"To: b@x.example\r\n\r\nno from\r\n", DKIM_NO_FROM, ""},
    {"From: Jane\r\n\r\nno address\r\n", DKIM_NO_FROM, ""},
    {"From: a@[192.0.2.1]\r\n\r\nliteral\r\n", DKIM_NO_FROM, ""},
    {"From: a@rsa.example\r\nFrom: a@rsa.example\r\n\r\ntwo\r\n", DKIM_MULTIPLE_FROM, ""},
    {"From: a@rsa.example, b@rsa.example\r\n\r\ntwo\r\n", DKIM_MULTIPLE_FROM, ""},
    {"From: a@nokey.example\r\n\r\nno key\r\n", DKIM_NO_KEY, "nokey.example"},
    {"From: a@pend.example\r\n\r\npending key\r\n", DKIM_NO_KEY, "pend.example"},
    {"From: a@sub.rsa.example\r\n\r\nsubdomain\r\n", DKIM_NO_KEY, "sub.rsa.example"},
    {"\r\nFrom: a@rsa.example\r\n", DKIM_NO_FROM, ""}, /* the From is body */
    {"From: a@rsa.example\r\nTo: b@x.example\r\n", DKIM_SIGNED, "rsa.example"}, /* no body */
    {"", DKIM_NO_FROM, ""},
};

static void test_results(void **state)
{
	struct env *e = *state;

	assert_string_equal(dkim_result_name(DKIM_SIGNED), "signed");
	assert_string_equal(dkim_result_name(DKIM_NO_KEY), "no_key");
	assert_string_equal(dkim_result_name(DKIM_HEADER_TOO_LARGE), "header_too_large");
	for (size_t i = 0; i < ARRAY_LEN(result_cases); i++) {
		char *out, domain[DKIM_DOMAIN_MAX + 1];
		enum dkim_result r = sign(e->s, result_cases[i].msg, 5, &out, domain);
		if (r != result_cases[i].want)
			fail_msg("case %zu: %s, want %s", i, dkim_result_name(r),
			         dkim_result_name(result_cases[i].want));
		assert_string_equal(domain, result_cases[i].domain);
		assert_true(r == DKIM_SIGNED || out[0] == '\0');
		free(out);
	}
}

/* A header section of exactly len octets (len > 100). */
static char *header_of(size_t len, const char *body)
{
	struct buf b;

	buf_init(&b);
	buf_puts(&b, "From: a@rsa.example\r\n");
	while (b.len + 60 < len - 2)
		buf_puts(&b, "X-Filler: 01234567890123456789012345678901234567890123456\r\n");
	buf_puts(&b, "X-Last: ");
	while (b.len < len - 4)
		buf_puts(&b, "z");
	buf_puts(&b, "\r\n\r\n");
	assert_int_equal(b.len, len);
	buf_puts(&b, body);
	return b.data;
}

static void test_header_too_large(void **state)
{
	struct env *e = *state;
	size_t chunks[] = {1, 4096, 65536, 1 << 20};
	char *fits = header_of(DKIM_HDR_MAX, "body\r\n");
	char *over = header_of(DKIM_HDR_MAX + 1, "body\r\n"), *out;

	/* the same answer however the bytes come */
	for (size_t i = 0; i < ARRAY_LEN(chunks); i++) {
		assert_int_equal(sign(e->s, over, chunks[i], &out, NULL), DKIM_HEADER_TOO_LARGE);
		assert_string_equal(out, "");
		free(out);
		assert_int_equal(sign(e->s, fits, chunks[i], &out, NULL), DKIM_SIGNED);
		free(out);
	}
	free(fits);
	free(over);
}

/* ---- keys coming and going --------------------------------------------------------- */

static void test_refresh(void **state)
{
	struct env *e = *state;
	char *err = NULL, *out, *path;

	assert_int_equal(dkim_signer_key_count(e->s), 3); /* the pending key is not loaded */
	assert_int_equal(dkim_signer_refresh(e->s, e->st, 0, &err), 0);
	assert_int_equal(dkim_signer_refresh(e->s, e->st, 1, &err), 1);
	keygen(e, "new.example", NULL, DKIM_ALGO_ED25519, DKIM_STATE_ACTIVE);
	assert_int_equal(sign(e->s, "From: a@new.example\r\n\r\nx\r\n", 9, &out, NULL),
	                 DKIM_NO_KEY);
	free(out);
	assert_int_equal(dkim_signer_refresh(e->s, e->st, 0, &err), 1);
	assert_int_equal(sign(e->s, "From: a@new.example\r\n\r\nx\r\n", 9, &out, NULL),
	                 DKIM_SIGNED);
	free(out);
	/* an unreadable key file: left out, the domain's other key signs */
	path = xasprintf("%s/dkim/e1._domainkey.dual.example.pem", e->f->data);
	assert_int_equal(unlink(path), 0);
	free(path);
	assert_int_equal(dkim_signer_refresh(e->s, e->st, 1, &err), 1);
	assert_int_equal(dkim_signer_key_count(e->s), 3);
	assert_int_equal(sign(e->s, "From: a@dual.example\r\n\r\nx\r\n", 9, &out, NULL),
	                 DKIM_SIGNED);
	assert_int_equal(count(out, "DKIM-Signature:"), 1);
	assert_int_equal(count(out, "a=rsa-sha256"), 1);
	free(out);
}

/* ---- threads ------------------------------------------------------------------------ */

struct worker {
	struct env *e;
	const char *want_bh;
	int bad;
};

#define ROUNDS 30

static void *sign_many(void *arg)
{
	struct worker *w = arg;

	for (int i = 0; i < ROUNDS; i++) {
		char *msg =
		    xasprintf("From: a@dual.example\r\nSubject: %d\r\n\r\nsame body\r\n", i);
		char *out, *bh;

		if (sign(w->e->s, msg, 11, &out, NULL) != DKIM_SIGNED ||
		    count(out, "DKIM-Signature:") != 2)
			w->bad++;
		bh = tag(out, "bh");
		w->bad += bh == NULL || strcmp(bh, w->want_bh) != 0;
		free(bh);
		free(out);
		free(msg);
	}
	return NULL;
}

static void *reload_many(void *arg)
{
	struct worker *w = arg;
	char *err = NULL;

	for (int i = 0; i < ROUNDS; i++)
		if (dkim_signer_refresh(w->e->s, w->e->st, 1, &err) != 1)
			w->bad++;
	return NULL;
}

static void test_threads(void **state)
{
	struct env *e = *state;
	struct worker w[5];
	pthread_t t[5];
	char *ref;

	assert_int_equal(sign(e->s, "From: a@dual.example\r\n\r\nsame body\r\n", 99, &ref, NULL),
	                 DKIM_SIGNED);
	for (int i = 0; i < 5; i++) {
		w[i] = (struct worker){e, tag(ref, "bh"), 0};
		pthread_create(&t[i], NULL, i == 4 ? reload_many : sign_many, &w[i]);
	}
	for (int i = 0; i < 5; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(w[i].bad, 0);
		free((char *)w[i].want_bh);
	}
	free(ref);
}

/* ---- the allocator and the ed25519 repair (dkim_mem.c) ----------------------------- */

/* libopendkim 2.11's struct dkim_crypto, as dkim_mem.c mirrors it. */
struct crypto {
	unsigned char pad;
	int keysize;
	size_t inlen, outlen;
	EVP_PKEY *pkey;
	void *key;
	void *keydata;
	unsigned char *in, *out;
};

/* What dkim_eom() leaves for an ed25519 handle, in arena a. */
static struct crypto *fake_crypto(struct dkim_arena *a, const char *type, int keysize)
{
	struct crypto *c = dkim_arena_malloc(a, sizeof *c);

	memset(c, 0, sizeof *c);
	c->keysize = keysize;
	c->outlen = (size_t)keysize / 8;
	c->out = dkim_arena_malloc(a, c->outlen);
	c->pkey = EVP_PKEY_Q_keygen(NULL, NULL, type);
	assert_non_null(c->pkey);
	return c;
}

static void test_arena_repair(void **state)
{
	struct dkim_arena *a = dkim_arena_new();
	struct crypto *ed = fake_crypto(a, "ED25519", 512);
	struct crypto *x448 = fake_crypto(a, "X25519", 512); /* another key type */
	struct crypto *busy = fake_crypto(a, "ED25519", 512);
	void *plain = dkim_arena_malloc(NULL, 10);

	busy->keydata = busy; /* its BIO not yet released: not after dkim_eom */
	assert_int_equal(dkim_arena_repair(a), 1);
	assert_null(ed->pkey);
	assert_non_null(x448->pkey);
	assert_int_equal(dkim_arena_repair(a), 0); /* never twice */
	EVP_PKEY_free(x448->pkey);
	EVP_PKEY_free(busy->pkey);
	dkim_arena_free(a, ed); /* as dkim_free() does; ed->out stays for the sweep */
	dkim_arena_free(NULL, plain);
	dkim_arena_free(a, NULL);
	dkim_arena_free_all(a); /* the rest: under ASan, a leak here fails the suite */
	dkim_arena_free_all(NULL);
}

/* Signing takes the keys parsed at load: libopendkim's own parse is
 * answered from them (dkim_fastkey.c), once per signature. */
static void test_fastkey_used(void **state)
{
	struct env *e = *state;
	char *msg = xasprintf("From: a@dual.example\r\n\r\nhi\r\n"), *out;
	size_t before = dkim_fastkey_hits();

	assert_int_equal(sign(e->s, msg, 4096, &out, NULL), DKIM_SIGNED);
	assert_int_equal(count(out, "DKIM-Signature:"), 2);
	assert_int_equal(dkim_fastkey_hits(), before + 2);
	free(out);
	free(msg);
}

/* The shortcut answers only its own thread, between enter and leave, for
 * a memory BIO holding exactly the key's text; anything else is OpenSSL's
 * own parse. */
static void test_fastkey_scope(void **state)
{
	EVP_PKEY *gen = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"), *got;
	struct dkim_fastkey k, copy;
	BIO *out = BIO_new(BIO_s_mem()), *in;
	char *pem, *text;
	long n;

	assert_non_null(gen);
	assert_int_equal(PEM_write_bio_PrivateKey(out, gen, NULL, NULL, 0, NULL, NULL), 1);
	n = BIO_get_mem_data(out, &text);
	pem = xstrndup(text, (size_t)n);
	assert_int_equal(dkim_fastkey_init(&k, pem), 0);
	dkim_fastkey_copy(&copy, &k);
	assert_ptr_equal(copy.pkey, k.pkey);
	assert_int_equal(dkim_fastkey_init(&(struct dkim_fastkey){0}, "not a key"), -1);

	dkim_fastkey_enter(&copy);
	in = BIO_new_mem_buf(pem, -1);
	got = PEM_read_bio_PrivateKey(in, NULL, NULL, NULL);
	assert_ptr_equal(got, k.pkey); /* the parsed key, one more reference */
	EVP_PKEY_free(got);
	BIO_free(in);
	in = BIO_new_mem_buf(pem, (int)strlen(pem) - 1); /* other text */
	got = PEM_read_bio_PrivateKey(in, NULL, NULL, NULL);
	assert_true(got != k.pkey);
	EVP_PKEY_free(got);
	BIO_free(in);
	dkim_fastkey_leave();
	in = BIO_new_mem_buf(pem, -1);
	got = PEM_read_bio_PrivateKey(in, NULL, NULL, NULL); /* not signing: a parse */
	assert_non_null(got);
	assert_true(got != k.pkey);
	assert_int_equal(EVP_PKEY_eq(got, k.pkey), 1);
	EVP_PKEY_free(got);
	BIO_free(in);

	dkim_fastkey_clear(&copy);
	dkim_fastkey_clear(&k);
	assert_null(k.pkey);
	BIO_free(out);
	EVP_PKEY_free(gen);
	free(pem);
}

int main(void)
{
	/* One set of keys for all (RSA key generation is slow); test_refresh
	 * changes them, so it runs last. */
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sign_shape),       cmocka_unit_test(test_sign_dual),
	    cmocka_unit_test(test_sign_chunking),    cmocka_unit_test(test_results),
	    cmocka_unit_test(test_header_too_large), cmocka_unit_test(test_threads),
	    cmocka_unit_test(test_fastkey_used),     cmocka_unit_test(test_fastkey_scope),
	    cmocka_unit_test(test_refresh),          cmocka_unit_test(test_arena_repair),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
