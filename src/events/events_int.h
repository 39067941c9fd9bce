/*
 * events_int.h: what the files of src/events/ share: the queue's record
 * format (events_rec.c, PURE) and the detail builder (events_json.c).
 */
#ifndef POSTHORN_EVENTS_INT_H
#define POSTHORN_EVENTS_INT_H

#include <stddef.h>
#include <stdint.h>

#include "util/util.h"

/*
 * A queued record: an event or a message, as copied by the emitter. In the
 * queue it is a header (length, kind, type, flags, a number, the time and
 * each string's length) followed by the strings, each NUL-terminated, the
 * whole padded to 8 bytes. A string slot may be absent (NULL).
 */
enum evrec_kind { EVREC_EVENT = 1, EVREC_MESSAGE = 2 };

/* String slots of an event. */
enum {
	RS_ACCOUNT,
	RS_MESSAGE_ID,
	RS_RECIPIENT,
	RS_MX,
	RS_REPLY,
	RS_STATUS,
	RS_REASON,
	RS_URL,
	RS_AGENT
};
/* String slots of a message; RM_TAGS holds `num` tags, each NUL-terminated. */
enum { RM_ID, RM_ACCOUNT, RM_FROM, RM_SUBJECT, RM_METADATA, RM_TAGS };
#define EVREC_STRS 9

struct evrec {
	uint8_t kind;
	uint8_t type;
	uint8_t machine;
	uint32_t num; /* event: attempt; message: number of tags in RM_TAGS */
	int64_t time_ms;
	const char *s[EVREC_STRS]; /* NULL: absent */
	size_t len[EVREC_STRS];    /* bytes, without the final NUL */
};

/* The longest each slot may be in the queue (longer strings are cut at a
 * UTF-8 boundary when encoded). */
size_t evrec_cap(int kind, int slot);

/* Bytes r takes in the queue. r->len[] must be set (evrec_set()). */
size_t evrec_size(const struct evrec *r);
/* Sets slot i to s (NULL: absent), cut to the slot's cap. */
void evrec_set(struct evrec *r, int slot, const char *s);
/* Sets slot i to the bytes s[0..n) (may hold NULs: the tags). */
void evrec_set_n(struct evrec *r, int slot, const char *s, size_t n);
/* Appends the encoded record to b. */
void evrec_append(struct buf *b, const struct evrec *r);
/* Decodes the record at data + *off (data holds len bytes): 0 with *off
 * moved past it, -1 when the bytes are not a whole record. The strings
 * point into data. */
int evrec_read(const char *data, size_t len, size_t *off, struct evrec *out);

/* The detail JSON text of an event record (malloc'd), at most
 * EVENT_DETAIL_MAX bytes: fields that do not fit are cut, and when even
 * that fails, {"truncated": true}. */
char *events_detail(const struct evrec *r);

#endif
