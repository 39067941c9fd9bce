/*
 * What the spool test suites share (test_spool.c, test_spool_front.c,
 * test_dsn.c):
 *   - struct wait and on_done(), the commit callback that records how a
 *     commit ended and the queue ID it gave;
 *   - spool file headers crafted byte by byte from the documented format
 *     (docs/spool.md: "PHSPOOL\0", little-endian fields, a BLAKE2b-128 of
 *     the first 112 bytes at 112), independently of spool_format.c, so
 *     that a test reading them fails when the code drifts from the
 *     document.
 */
#ifndef POSTHORN_TEST_SPOOL_FIXTURE_H
#define POSTHORN_TEST_SPOOL_FIXTURE_H

#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "util/util.h"

struct wait {
	int done, ok;
	char id[ID_LEN + 1];
};

static inline void on_done(void *arg, int ok, const char *id)
{
	struct wait *w = arg;

	w->done++;
	w->ok = ok;
	snprintf(w->id, sizeof(w->id), "%s", id);
}

static inline void craft_le32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static inline void craft_le64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

/* A 128-byte header: the body at body_off, the envelope right after it. */
static inline void craft_hdr(unsigned char h[128], uint32_t version, uint32_t flags,
                             uint64_t body_off, uint64_t body_len, uint64_t env_len,
                             uint32_t n_rcpts)
{
	memset(h, 0, 128);
	memcpy(h, "PHSPOOL", 8);
	craft_le32(h + 8, version);
	craft_le32(h + 12, flags);
	craft_le64(h + 16, body_off);
	craft_le64(h + 24, body_len);
	craft_le64(h + 32, body_off + body_len);
	craft_le64(h + 40, env_len);
	craft_le32(h + 48, n_rcpts);
	crypto_generichash(h + 112, 16, h, 112, NULL, 0);
}

#endif
