/*
 * events_rec: the record format of the event queue (events_int.h). It
 * reads only what events_emit() wrote into memory, never outside bytes;
 * unit-tested in tests/unit/test_events.c.
 *
 * Encoding copies: the emitter's strings are read during events_emit()
 * only. Decoding does not: the decoded record points into the queue's
 * buffer, which the writer owns until it has written the batch.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "events/events_int.h"
#include "store/store.h"
#include "util/util.h"

#define ABSENT UINT32_MAX

/* Fixed part: u32 total length, u8 kind, u8 type, u8 machine, u8 zero,
 * u32 num, u32 zero, i64 time, u32 lengths[EVREC_STRS]. */
#define HDR_SIZE (4 + 4 + 4 + 4 + 8 + 4 * EVREC_STRS)

static const size_t event_caps[EVREC_STRS] = {
    [RS_ACCOUNT] = COUNTER_ACCOUNT_MAX,
    [RS_MESSAGE_ID] = 64,
    [RS_RECIPIENT] = EVENT_ADDR_MAX,
    [RS_MX] = 320,
    [RS_REPLY] = 1000,
    [RS_STATUS] = 16,
    [RS_REASON] = 1000,
    [RS_URL] = 2048,
    [RS_AGENT] = 256,
};
static const size_t message_caps[EVREC_STRS] = {
    [RM_ID] = 64,
    [RM_ACCOUNT] = COUNTER_ACCOUNT_MAX,
    [RM_FROM] = EVENT_ADDR_MAX,
    [RM_SUBJECT] = EVENT_SUBJECT_MAX,
    [RM_METADATA] = EVENT_METADATA_MAX,
    [RM_TAGS] = EVENT_TAGS_MAX * (EVENT_TAG_MAX + 1),
};

size_t evrec_cap(int kind, int slot)
{
	if (slot < 0 || slot >= EVREC_STRS)
		return 0;
	return kind == EVREC_MESSAGE ? message_caps[slot] : event_caps[slot];
}

/* The longest prefix of s[0..n) of at most cap bytes that does not end
 * inside a UTF-8 sequence. */
static size_t utf8_cut(const char *s, size_t n, size_t cap)
{
	if (n <= cap)
		return n;
	while (cap > 0 && ((unsigned char)s[cap] & 0xc0) == 0x80)
		cap--;
	return cap;
}

void evrec_set_n(struct evrec *r, int slot, const char *s, size_t n)
{
	size_t cap = evrec_cap(r->kind, slot);

	r->s[slot] = s;
	r->len[slot] = s ? utf8_cut(s, n, cap) : 0;
}

void evrec_set(struct evrec *r, int slot, const char *s)
{
	evrec_set_n(r, slot, s, s ? strlen(s) : 0);
}

static size_t pad8(size_t n)
{
	return (n + 7) & ~(size_t)7;
}

size_t evrec_size(const struct evrec *r)
{
	size_t n = HDR_SIZE;

	for (int i = 0; i < EVREC_STRS; i++)
		if (r->s[i])
			n += r->len[i] + 1;
	return pad8(n);
}

static void put32(char *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

static uint32_t get32(const char *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

void evrec_append(struct buf *b, const struct evrec *r)
{
	size_t total = evrec_size(r), at;
	char *p;

	buf_reserve(b, total);
	p = b->data + b->len;
	memset(p, 0, total);
	put32(p, (uint32_t)total);
	p[4] = (char)r->kind;
	p[5] = (char)r->type;
	p[6] = (char)r->machine;
	put32(p + 8, r->num);
	memcpy(p + 16, &r->time_ms, 8);
	at = HDR_SIZE;
	for (int i = 0; i < EVREC_STRS; i++) {
		put32(p + 24 + 4 * i, r->s[i] ? (uint32_t)r->len[i] : ABSENT);
		if (!r->s[i])
			continue;
		memcpy(p + at, r->s[i], r->len[i]);
		at += r->len[i] + 1; /* the NUL is already there */
	}
	b->len += total;
	b->data[b->len] = '\0';
}

int evrec_read(const char *data, size_t len, size_t *off, struct evrec *out)
{
	const char *p = data + *off;
	size_t avail = len - *off, total, at = HDR_SIZE;

	if (*off > len || avail < HDR_SIZE || (total = get32(p)) > avail || total < HDR_SIZE)
		return -1;
	memset(out, 0, sizeof(*out));
	out->kind = (uint8_t)p[4];
	out->type = (uint8_t)p[5];
	out->machine = (uint8_t)p[6];
	out->num = get32(p + 8);
	memcpy(&out->time_ms, p + 16, 8);
	for (int i = 0; i < EVREC_STRS; i++) {
		uint32_t n = get32(p + 24 + 4 * i);
		if (n == ABSENT)
			continue;
		if (n >= total || at + n + 1 > total || p[at + n] != '\0')
			return -1;
		out->s[i] = p + at;
		out->len[i] = n;
		at += n + 1;
	}
	*off += total;
	return 0;
}
