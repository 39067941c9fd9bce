/*
 * util: allocation wrappers that never return NULL, growable buffers,
 * number/size/duration parsing, queue IDs and a clock that tests can move.
 * PURE: libc only. Everything here is safe to call from any thread except
 * the clock override, which tests set before starting threads.
 */
#ifndef POSTHORN_UTIL_H
#define POSTHORN_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Allocation: abort the process with a message on exhaustion. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Growable byte buffer, always NUL-terminated after data[len]. */
struct buf {
	char *data;
	size_t len;
	size_t cap;
};
void buf_init(struct buf *b);
void buf_free(struct buf *b);
void buf_reset(struct buf *b);
void buf_reserve(struct buf *b, size_t extra);
void buf_append(struct buf *b, const void *p, size_t n);
void buf_puts(struct buf *b, const char *s);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_vprintf(struct buf *b, const char *fmt, va_list ap);
/* Drop the first n bytes. */
void buf_consume(struct buf *b, size_t n);

/* "25m" -> 26214400. Suffixes k/m/g are powers of 1024. 0 ok, -1 bad. */
int parse_size(const char *s, uint64_t *out);
/* "5m" -> 300. Suffixes s/m/h/d; a bare number is seconds. 0 ok, -1 bad. */
int parse_duration(const char *s, uint64_t *seconds);
/* Unsigned decimal with no sign, spaces or overflow. 0 ok, -1 bad. */
int parse_u64(const char *s, uint64_t *out);

/* ASCII case-insensitive compare and prefix test. */
int ascii_casecmp(const char *a, const char *b);
int ascii_ncasecmp(const char *a, const char *b, size_t n);
int ascii_startswith(const char *s, const char *prefix); /* case-insensitive */
void ascii_lower(char *s);
/* Trim ASCII space and tab on both sides, in place; returns s. */
char *str_trim(char *s);

/*
 * Queue IDs: 16 characters of a base-32 alphabet (digits, and capital
 * letters but I, O, U and Z, so no letter is misread as a digit): 9 of
 * milliseconds, then 3 of the node's tag (15 bits) and 4 of a process-wide
 * counter (20 bits). They sort by creation time. Two nodes with different
 * tags never make the same ID; within a node, the spool creates each file
 * exclusively and draws again on a clash. A process that has no node tag
 * (the CLI, tests) uses a random one. Also used as session IDs.
 */
#define ID_LEN      16
#define ID_NODE_MAX 0x7FFF /* tags are 0 .. ID_NODE_MAX */
void id_new(char out[ID_LEN + 1]);
/* The ID of (ms, node tag, counter): the rule id_new() follows. PURE. */
void id_make(char out[ID_LEN + 1], uint64_t ms, uint32_t node, uint32_t counter);
/* This process's node tag from now on (the server's, from its node ID). */
void id_set_node(uint32_t node);
/* 1 if s is a well-formed ID (safe to use in a file name). */
int id_valid(const char *s);
/* The unix milliseconds an ID was made at (its first 9 characters); 0 if
 * it is not a well-formed ID. A queue ID's is the message's arrival. */
uint64_t id_time_ms(const char *s);
/* The node tag an ID was made with (characters 10 to 12); -1 if it is not
 * a well-formed ID. IDs made before node tags (up to 0.x) carry a random
 * number there. */
int32_t id_node(const char *s);

/*
 * Node IDs (DATA_DIR/node-id): 20 characters of the same alphabet, drawn
 * once. The first 3 are the node's tag in queue IDs.
 */
#define NODE_ID_LEN 20
void node_id_new(char out[NODE_ID_LEN + 1]);
/* 1 if s is a well-formed node ID. PURE. */
int node_id_valid(const char *s);
/* A node ID's tag (its first 3 characters); -1 if it is not well-formed. */
int32_t node_id_tag(const char *s);

/* Clock. Tests may set an override; 0 restores the real clock. */
uint64_t clock_now_ms(void);  /* wall clock, ms since the epoch */
int64_t clock_now_s(void);    /* wall clock, whole seconds since the epoch */
uint64_t clock_mono_ms(void); /* monotonic ms */
uint64_t clock_mono_us(void); /* monotonic microseconds */
void clock_set_override_ms(uint64_t ms);

/* RFC 5322 date for now (or t), e.g. "Sat, 28 Nov 2026 01:50:16 +0000". */
void rfc5322_date(char *out, size_t n, int64_t t);

/* Base64 (RFC 4648, no line breaks). Decode returns length or -1. */
size_t base64_encoded_len(size_t n);
size_t base64_encode(const unsigned char *in, size_t n, char *out); /* NUL-terminates */
long base64_decode(const char *in, size_t n, unsigned char *out, size_t cap);

#endif
