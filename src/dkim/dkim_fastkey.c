/*
 * dkim_fastkey: libopendkim signing with a key parsed once.
 *
 * libopendkim (2.11, and upstream since) takes a signing key only as text,
 * and at the end of every message parses it again (dkim_privkey_load():
 * PEM_read_bio_PrivateKey on a memory BIO of the text), then signs with
 * that fresh key object. Measured on the development machine (docs/dkim.md,
 * "Cost"), the parse costs as much as the RSA-2048 signature itself, and a
 * fresh RSA key object redoes its Montgomery and blinding set-up for the
 * one signature it makes: together about 60 % of the signing time with
 * RSA and 90 % with Ed25519. There is no call to hand it a parsed key.
 *
 * So Posthorn defines PEM_read_bio_PrivateKey itself: the dynamic linker
 * binds every caller's reference (libopendkim's, libssl's, ours) to the
 * executable's definition. It forwards to OpenSSL's own (dlsym RTLD_NEXT)
 * in every case but one: on a thread between dkim_fastkey_enter() and
 * dkim_fastkey_leave() (dkim_sign.c brackets its dkim_eom() calls with
 * them), when the BIO is a memory BIO holding exactly that key's text, it
 * returns the key the signer parsed when it loaded the key, with one more
 * reference: libopendkim frees it as it would free its own (and the leak
 * repair of dkim_mem.c frees an ed25519 one). A key object is never
 * changed after it is made, and OpenSSL signs with one key from several
 * threads at once (its RSA blinding and Montgomery caches are locked).
 *
 * If a libopendkim stops calling PEM_read_bio_PrivateKey, nothing breaks:
 * signing is only slower. dkim_fastkey_hits() counts the shortcuts taken
 * (the unit test checks that it is used).
 */
#include "dkim/dkim_int.h"

#include <dlfcn.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

typedef EVP_PKEY *(*pem_read_fn)(BIO *, EVP_PKEY **, pem_password_cb *, void *);

static pem_read_fn real_read;
static pthread_once_t real_once = PTHREAD_ONCE_INIT;
static _Thread_local const struct dkim_fastkey *current;
static _Atomic size_t hits;

static void find_real(void)
{
	real_read = (pem_read_fn)dlsym(RTLD_NEXT, "PEM_read_bio_PrivateKey");
}

EVP_PKEY *PEM_read_bio_PrivateKey(BIO *bp, EVP_PKEY **x, pem_password_cb *cb, void *u)
{
	const struct dkim_fastkey *k = current;
	char *text;
	long n;

	if (k && k->pkey && bp && !x && BIO_method_type(bp) == BIO_TYPE_MEM &&
	    (n = BIO_get_mem_data(bp, &text)) >= 0 && (size_t)n == k->len &&
	    memcmp(text, k->text, k->len) == 0 && EVP_PKEY_up_ref(k->pkey) == 1) {
		atomic_fetch_add(&hits, 1);
		return k->pkey;
	}
	pthread_once(&real_once, find_real);
	return real_read ? real_read(bp, x, cb, u) : NULL;
}

int dkim_fastkey_init(struct dkim_fastkey *k, const char *text)
{
	BIO *b = BIO_new_mem_buf(text, -1);

	memset(k, 0, sizeof(*k));
	pthread_once(&real_once, find_real);
	/* OpenSSL's own parse: this thread is not signing, so no shortcut */
	k->pkey = b && real_read ? real_read(b, NULL, NULL, NULL) : NULL;
	BIO_free(b);
	if (!k->pkey)
		return -1;
	k->text = strdup(text);
	k->len = k->text ? strlen(text) : 0;
	if (!k->text) {
		EVP_PKEY_free(k->pkey);
		k->pkey = NULL;
		return -1;
	}
	return 0;
}

void dkim_fastkey_copy(struct dkim_fastkey *to, const struct dkim_fastkey *from)
{
	memset(to, 0, sizeof(*to));
	if (!from->pkey || EVP_PKEY_up_ref(from->pkey) != 1)
		return;
	to->text = strdup(from->text);
	if (!to->text) {
		EVP_PKEY_free(from->pkey);
		return;
	}
	to->pkey = from->pkey;
	to->len = from->len;
}

void dkim_fastkey_clear(struct dkim_fastkey *k)
{
	EVP_PKEY_free(k->pkey);
	if (k->text)
		OPENSSL_cleanse(k->text, k->len);
	free(k->text);
	memset(k, 0, sizeof(*k));
}

void dkim_fastkey_enter(const struct dkim_fastkey *k)
{
	current = k;
}

void dkim_fastkey_leave(void)
{
	current = NULL;
}

size_t dkim_fastkey_hits(void)
{
	return atomic_load(&hits);
}
