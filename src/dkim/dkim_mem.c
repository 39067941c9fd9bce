/*
 * dkim_mem: the allocator libopendkim is given, one arena per signing
 * context, and the repair of its ed25519 key leak (dkim_int.h says why).
 *
 * Each block carries a small header linking it into its arena, so freeing
 * is O(1) and what is left at the end can be listed. libopendkim pairs its
 * allocations and frees of a handle's memory through these hooks
 * (dkim_malloc / dkim_mfree with the handle's closure); memory it takes
 * for the library itself comes with a NULL closure and goes straight to
 * malloc and free.
 *
 * The repair needs libopendkim's private struct dkim_crypto (dkim-types.h
 * of 2.11, OpenSSL build), mirrored below. A block is taken for one only
 * when everything fits an ed25519 key after signing: its size, the key
 * size (512 bits), the signature length (64), the RSA and input fields
 * empty, the key's BIO already released by dkim_eom(), and the signature
 * buffer a 64-byte block of the same arena. Then the EVP_PKEY is freed
 * and its field cleared: a libopendkim that frees it itself (a fixed
 * release) then finds NULL and does nothing, so the repair is never a
 * double free. Anything else is left alone.
 */
#include "dkim/dkim_int.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdlib.h>

#include "util/util.h"

struct block {
	struct block *prev, *next;
	size_t size;
	size_t pad; /* keeps the payload 16-byte aligned */
};

struct dkim_arena {
	struct block head; /* circular list of live blocks */
};

/* libopendkim 2.11's struct dkim_crypto, OpenSSL build. */
struct odkim_crypto {
	unsigned char crypto_pad;
	int crypto_keysize;
	size_t crypto_inlen;
	size_t crypto_outlen;
	EVP_PKEY *crypto_pkey;
	void *crypto_key;
	BIO *crypto_keydata;
	unsigned char *crypto_in;
	unsigned char *crypto_out;
};

#define ED25519_SIG_LEN 64

struct dkim_arena *dkim_arena_new(void)
{
	struct dkim_arena *a = xcalloc(1, sizeof *a);

	a->head.prev = a->head.next = &a->head;
	return a;
}

void *dkim_arena_malloc(void *closure, size_t n)
{
	struct dkim_arena *a = closure;
	struct block *b;

	if (a == NULL)
		return malloc(n);
	if (n > SIZE_MAX - sizeof *b || (b = malloc(sizeof *b + n)) == NULL)
		return NULL; /* libopendkim reports it */
	b->size = n;
	b->next = a->head.next;
	b->prev = &a->head;
	a->head.next->prev = b;
	a->head.next = b;
	return b + 1;
}

void dkim_arena_free(void *closure, void *p)
{
	struct block *b;

	if (closure == NULL || p == NULL) {
		free(p);
		return;
	}
	b = (struct block *)p - 1;
	b->prev->next = b->next;
	b->next->prev = b->prev;
	free(b);
}

/* 1 if p is the payload of a live block of the arena of n bytes. */
static int arena_has(const struct dkim_arena *a, const void *p, size_t n)
{
	for (const struct block *b = a->head.next; b != &a->head; b = b->next)
		if ((const void *)(b + 1) == p)
			return b->size == n;
	return 0;
}

static int is_ed25519_crypto(const struct dkim_arena *a, const struct block *b)
{
	const struct odkim_crypto *c = (const void *)(b + 1);

	return b->size == sizeof *c && c->crypto_keysize == 8 * ED25519_SIG_LEN &&
	       c->crypto_outlen == ED25519_SIG_LEN && c->crypto_inlen == 0 &&
	       c->crypto_key == NULL && c->crypto_in == NULL && c->crypto_keydata == NULL &&
	       c->crypto_pkey != NULL && c->crypto_out != NULL &&
	       arena_has(a, c->crypto_out, ED25519_SIG_LEN) &&
	       EVP_PKEY_is_a(c->crypto_pkey, "ED25519");
}

size_t dkim_arena_repair(struct dkim_arena *a)
{
	size_t n = 0;

	for (struct block *b = a->head.next; b != &a->head; b = b->next)
		if (is_ed25519_crypto(a, b)) {
			struct odkim_crypto *c = (void *)(b + 1);
			EVP_PKEY_free(c->crypto_pkey);
			c->crypto_pkey = NULL;
			n++;
		}
	return n;
}

void dkim_arena_free_all(struct dkim_arena *a)
{
	struct block *b, *next;

	if (a == NULL)
		return;
	for (b = a->head.next; b != &a->head; b = next) {
		next = b->next;
		free(b);
	}
	free(a);
}
