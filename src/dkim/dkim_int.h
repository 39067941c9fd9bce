/*
 * dkim_int.h: what the files of src/dkim/ share with each other only.
 *
 * The allocator given to libopendkim (dkim_mem.c). Every block it takes
 * for one signing context is listed in that context's arena, so that what
 * libopendkim forgets to free is freed with the context. One leak needs
 * more than that: libopendkim 2.11 (Debian bookworm) never frees the
 * private key (an OpenSSL EVP_PKEY) of an ed25519-sha256 handle, about
 * 0.5 KB per signature (fixed upstream after 2.11, OpenDKIM pull request
 * 321). dkim_arena_repair() finds that key in the arena and frees it.
 *
 * An arena belongs to one context, used by one thread at a time.
 */
#ifndef POSTHORN_DKIM_INT_H
#define POSTHORN_DKIM_INT_H

#include <stddef.h>

struct dkim_arena;

struct dkim_arena *dkim_arena_new(void);

/* The hooks of dkim_init(); closure is the arena given to dkim_sign()
 * (NULL: the library's own allocations, plain malloc and free). */
void *dkim_arena_malloc(void *closure, size_t n);
void dkim_arena_free(void *closure, void *p);

/* After the context's last dkim_eom() and before its dkim_free() calls:
 * frees the private keys libopendkim would leak. Returns how many. */
size_t dkim_arena_repair(struct dkim_arena *a);

/* After every handle of the arena went through dkim_free(): frees what
 * is left in it, then the arena. NULL is fine. */
void dkim_arena_free_all(struct dkim_arena *a);

/*
 * Signing with a key parsed once (dkim_fastkey.c says how and why): a key
 * object and the text libopendkim is given for it. A context holds a copy
 * (one more reference) for each of its handles, and brackets dkim_eom()
 * with enter/leave, so that libopendkim's parse of that text returns the
 * object instead. Any thread; the object is never changed.
 */
struct evp_pkey_st;
struct dkim_fastkey {
	struct evp_pkey_st *pkey; /* NULL: no shortcut (libopendkim parses) */
	char *text;
	size_t len;
};
/* Parses text (PEM) into k; -1 (k empty) when it cannot. */
int dkim_fastkey_init(struct dkim_fastkey *k, const char *text);
/* to gets its own reference and copy (empty if from is). */
void dkim_fastkey_copy(struct dkim_fastkey *to, const struct dkim_fastkey *from);
void dkim_fastkey_clear(struct dkim_fastkey *k);
void dkim_fastkey_enter(const struct dkim_fastkey *k);
void dkim_fastkey_leave(void);
/* Times libopendkim was handed a parsed key (for tests and the bench). */
size_t dkim_fastkey_hits(void);

#endif
