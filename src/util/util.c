/*
 * util: allocation that cannot fail, buffers, parsing of sizes and
 * durations, IDs, the clock, dates and base64. PURE: libc only.
 */
#include "util/util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static void oom(size_t n)
{
	char msg[96];
	int len = snprintf(msg, sizeof(msg), "posthorn: out of memory allocating %zu bytes\n", n);
	if (write(2, msg, (size_t)len) < 0) {
		/* nothing more we can do */
	}
	abort();
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		oom(n);
	return p;
}

void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p)
		oom(n * size);
	return p;
}

void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q)
		oom(n);
	return q;
}

char *xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
	char *p = xmalloc(n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *xasprintf(const char *fmt, ...)
{
	struct buf b;
	va_list ap;

	buf_init(&b);
	va_start(ap, fmt);
	buf_vprintf(&b, fmt, ap);
	va_end(ap);
	return b.data;
}

void buf_init(struct buf *b)
{
	b->cap = 64;
	b->len = 0;
	b->data = xmalloc(b->cap);
	b->data[0] = '\0';
}

void buf_free(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

void buf_reset(struct buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

void buf_reserve(struct buf *b, size_t extra)
{
	if (!b->data)
		buf_init(b);
	if (b->len + extra + 1 <= b->cap)
		return;
	while (b->len + extra + 1 > b->cap)
		b->cap *= 2;
	b->data = xrealloc(b->data, b->cap);
}

void buf_append(struct buf *b, const void *p, size_t n)
{
	buf_reserve(b, n);
	memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void buf_puts(struct buf *b, const char *s)
{
	buf_append(b, s, strlen(s));
}

void buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	int n;

	buf_reserve(b, 0);
	va_copy(ap2, ap);
	n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		return;
	if ((size_t)n >= b->cap - b->len) {
		buf_reserve(b, (size_t)n);
		vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
	}
	b->len += (size_t)n;
}

void buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	buf_vprintf(b, fmt, ap);
	va_end(ap);
}

void buf_consume(struct buf *b, size_t n)
{
	if (n >= b->len) {
		buf_reset(b);
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
	b->data[b->len] = '\0';
}

int parse_u64(const char *s, uint64_t *out)
{
	uint64_t v = 0;

	if (!s || !*s)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		if (v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*out = v;
	return 0;
}

/* Number with one optional suffix from `suffixes`, scaled by `mult`. */
static int parse_scaled(const char *s, const char *suffixes, const uint64_t *mult, uint64_t *out)
{
	char num[32];
	size_t n = strlen(s);
	uint64_t v, m = 1;
	const char *p;

	if (n == 0 || n >= sizeof(num))
		return -1;
	memcpy(num, s, n + 1);
	p = strchr(suffixes, tolower((unsigned char)num[n - 1]));
	if (p) {
		m = mult[p - suffixes];
		num[n - 1] = '\0';
	}
	if (parse_u64(num, &v) < 0 || (v && m > UINT64_MAX / v))
		return -1;
	*out = v * m;
	return 0;
}

int parse_size(const char *s, uint64_t *out)
{
	static const uint64_t mult[] = {1024ULL, 1024ULL * 1024, 1024ULL * 1024 * 1024};
	return parse_scaled(s, "kmg", mult, out);
}

int parse_duration(const char *s, uint64_t *seconds)
{
	static const uint64_t mult[] = {1, 60, 3600, 86400};
	return parse_scaled(s, "smhd", mult, seconds);
}

int ascii_casecmp(const char *a, const char *b)
{
	for (;; a++, b++) {
		int ca = tolower((unsigned char)*a), cb = tolower((unsigned char)*b);
		if (ca != cb || !ca)
			return ca - cb;
	}
}

int ascii_ncasecmp(const char *a, const char *b, size_t n)
{
	for (; n; n--, a++, b++) {
		int ca = tolower((unsigned char)*a), cb = tolower((unsigned char)*b);
		if (ca != cb || !ca)
			return ca - cb;
	}
	return 0;
}

int ascii_startswith(const char *s, const char *prefix)
{
	return ascii_ncasecmp(s, prefix, strlen(prefix)) == 0;
}

void ascii_lower(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

char *str_trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	*e = '\0';
	return s;
}

/* IDs: 9 base-32 digits of milliseconds (enough until year 3084), 3 of
 * the node tag, 4 of a process-wide counter: two IDs made in the same
 * millisecond by one process differ and sort in creation order (until the
 * counter wraps, after 2^20 IDs); two nodes' IDs differ by their tags. */
static const char id_alphabet[] = "0123456789ABCDEFGHJKLMNPQRSTVWXY";
static _Atomic uint32_t id_node_tag; /* tag + 1; 0: not drawn yet */

static uint32_t random_u32(void)
{
	uint32_t r = 0;

	if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r))
		r = (uint32_t)clock_mono_us() ^ (uint32_t)getpid();
	return r;
}

void id_make(char out[ID_LEN + 1], uint64_t ms, uint32_t node, uint32_t counter)
{
	uint64_t tail = (uint64_t)(node & ID_NODE_MAX) << 20 | (counter & 0xFFFFF);
	int i;

	for (i = 8; i >= 0; i--, ms >>= 5)
		out[i] = id_alphabet[ms & 31];
	for (i = 15; i >= 9; i--, tail >>= 5)
		out[i] = id_alphabet[tail & 31];
	out[ID_LEN] = '\0';
}

void id_set_node(uint32_t node)
{
	atomic_store(&id_node_tag, (node & ID_NODE_MAX) + 1);
}

void id_new(char out[ID_LEN + 1])
{
	/* starts anywhere: a restart in the same millisecond (a clock set
	 * back) is unlikely to repeat the last run's IDs */
	static _Atomic uint32_t counter;
	static _Atomic int seeded;
	uint32_t tag = atomic_load(&id_node_tag), none = 0;

	if (!atomic_load(&seeded) && atomic_exchange(&seeded, 1) == 0)
		atomic_fetch_add(&counter, random_u32());
	if (!tag) { /* first use, no node: a random tag (the first drawn wins) */
		atomic_compare_exchange_strong(&id_node_tag, &none,
		                               (random_u32() & ID_NODE_MAX) + 1);
		tag = atomic_load(&id_node_tag);
	}
	id_make(out, clock_now_ms(), tag - 1, atomic_fetch_add(&counter, 1));
}

int id_valid(const char *s)
{
	size_t i;

	for (i = 0; i < ID_LEN; i++)
		if (!s[i] || !strchr(id_alphabet, s[i]))
			return 0;
	return s[ID_LEN] == '\0';
}

/* The number n base-32 characters of s spell (s well-formed). */
static uint64_t id_digits(const char *s, int n)
{
	uint64_t v = 0;

	for (int i = 0; i < n; i++)
		v = v << 5 | (uint64_t)(strchr(id_alphabet, s[i]) - id_alphabet);
	return v;
}

uint64_t id_time_ms(const char *s)
{
	return s && id_valid(s) ? id_digits(s, 9) : 0;
}

int32_t id_node(const char *s)
{
	return s && id_valid(s) ? (int32_t)id_digits(s + 9, 3) : -1;
}

void node_id_new(char out[NODE_ID_LEN + 1])
{
	unsigned char r[NODE_ID_LEN];

	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
		for (size_t i = 0; i < sizeof(r); i++)
			r[i] = (unsigned char)random_u32();
	for (size_t i = 0; i < NODE_ID_LEN; i++)
		out[i] = id_alphabet[r[i] & 31];
	out[NODE_ID_LEN] = '\0';
}

int node_id_valid(const char *s)
{
	for (size_t i = 0; i < NODE_ID_LEN; i++)
		if (!s[i] || !strchr(id_alphabet, s[i]))
			return 0;
	return s[NODE_ID_LEN] == '\0';
}

int32_t node_id_tag(const char *s)
{
	return s && node_id_valid(s) ? (int32_t)id_digits(s, 3) : -1;
}

static _Atomic uint64_t clock_override;

uint64_t clock_now_ms(void)
{
	struct timespec ts;
	uint64_t o = atomic_load(&clock_override);

	if (o)
		return o;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int64_t clock_now_s(void)
{
	return (int64_t)(clock_now_ms() / 1000);
}

uint64_t clock_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t clock_mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

void clock_set_override_ms(uint64_t ms)
{
	atomic_store(&clock_override, ms);
}

void rfc5322_date(char *out, size_t n, int64_t t)
{
	static const char *days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
	static const char *months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	                               "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	snprintf(out, n, "%s, %d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday], tm.tm_mday,
	         months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t base64_encoded_len(size_t n)
{
	return (n + 2) / 3 * 4;
}

size_t base64_encode(const unsigned char *in, size_t n, char *out)
{
	size_t i, o = 0;

	for (i = 0; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		out[o++] = b64_alphabet[v >> 18];
		out[o++] = b64_alphabet[(v >> 12) & 63];
		out[o++] = b64_alphabet[(v >> 6) & 63];
		out[o++] = b64_alphabet[v & 63];
	}
	if (i < n) {
		uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0);
		out[o++] = b64_alphabet[v >> 18];
		out[o++] = b64_alphabet[(v >> 12) & 63];
		out[o++] = i + 1 < n ? b64_alphabet[(v >> 6) & 63] : '=';
		out[o++] = '=';
	}
	out[o] = '\0';
	return o;
}

static int b64_value(char c)
{
	const char *p = c ? strchr(b64_alphabet, c) : NULL;
	return p ? (int)(p - b64_alphabet) : -1;
}

long base64_decode(const char *in, size_t n, unsigned char *out, size_t cap)
{
	size_t i, o = 0, pad = 0;
	uint32_t acc = 0;
	int bits = 0;

	if (n % 4)
		return -1;
	for (i = 0; i < n; i++) {
		int v;
		if (in[i] == '=') {
			/* padding only in the last two positions of the last quantum */
			if (i < n - 2 || (i == n - 2 && in[n - 1] != '='))
				return -1;
			pad++;
			continue;
		}
		if ((v = b64_value(in[i])) < 0)
			return -1;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o >= cap)
				return -1;
			out[o++] = (unsigned char)(acc >> bits);
		}
	}
	(void)pad;
	return (long)o;
}
