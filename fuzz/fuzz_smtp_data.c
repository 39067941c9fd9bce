/*
 * libFuzzer target for smtpd/smtp_data. The first input byte picks a split
 * position, the rest is DATA/BDAT content. In both modes the content is
 * decoded whole, in two pieces cut at that position, and (for short
 * inputs) byte by byte, each into exact-size heap buffers so that writing
 * one byte past the input's size is caught by AddressSanitizer.
 *
 * Invariants: every way of cutting gives identical output and flags; no
 * call outputs more than it consumed; RAW output equals its input; DOT
 * output ends with CRLF when done; a message without bad_eol has no bare
 * CR or LF; headers_end points at a CRLF; the counters agree.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtpd/smtp_data.h"

#define CHECK(x)                                                                                   \
	do {                                                                                       \
		if (!(x))                                                                          \
			abort();                                                                   \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct run {
	char *out;
	size_t out_len;
	size_t consumed;
	struct smtp_data d;
};

/* One feed call with an output buffer of exactly n bytes. */
static void feed(struct run *r, const char *in, size_t n)
{
	char *tmp = malloc(n ? n : 1);
	size_t used, ol = (size_t)-1;

	CHECK(tmp);
	if (r->d.done) {
		free(tmp);
		return;
	}
	used = smtp_data_feed(&r->d, in, n, tmp, &ol);
	CHECK(used <= n && ol <= used);
	CHECK(r->d.done || used == n);
	memcpy(r->out + r->out_len, tmp, ol);
	r->out_len += ol;
	r->consumed += used;
	free(tmp);
}

static void run_init(struct run *r, enum smtp_data_mode mode, size_t n)
{
	memset(r, 0, sizeof(*r));
	smtp_data_init(&r->d, mode);
	r->out = malloc(n ? n : 1);
	CHECK(r->out);
}

static void same(const struct run *a, const struct run *b)
{
	CHECK(a->out_len == b->out_len && memcmp(a->out, b->out, a->out_len) == 0);
	CHECK(a->consumed == b->consumed);
	CHECK(a->d.bad_eol == b->d.bad_eol);
	CHECK(a->d.done == b->d.done && a->d.out_bytes == b->d.out_bytes);
	CHECK(a->d.in_headers == b->d.in_headers && a->d.headers_end == b->d.headers_end);
	CHECK(a->d.has_message_id == b->d.has_message_id && a->d.has_date == b->d.has_date);
	CHECK(a->d.at_line_start == b->d.at_line_start);
}

/* 1 if s holds an LF not after CR or a CR not followed by LF; a last CR
 * counts only when `ended` (no LF can follow any more). */
static int has_bare(const char *s, size_t n, int ended)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r'))
			return 1;
		if (s[i] == '\r' && (i + 1 < n ? s[i + 1] != '\n' : ended))
			return 1;
	}
	return 0;
}

static void invariants(const struct run *r, enum smtp_data_mode mode, const char *in, size_t n)
{
	const struct smtp_data *d = &r->d;

	CHECK(r->out_len <= r->consumed && r->consumed <= n && d->out_bytes == r->out_len);
	CHECK(d->done || r->consumed == n);
	if (mode == SMTP_DATA_RAW) {
		struct smtp_data ended = *d;
		CHECK(!d->done && r->out_len == n && memcmp(r->out, in, n) == 0);
		/* RAW flags exactly the bare line ends, a final CR once ended */
		CHECK(d->bad_eol == has_bare(in, n, 0));
		smtp_data_end(&ended);
		CHECK(ended.bad_eol == has_bare(in, n, 1));
	}
	if (d->done)
		CHECK(r->out_len == 0 ||
		      (r->out_len >= 2 && memcmp(r->out + r->out_len - 2, "\r\n", 2) == 0));
	if (!d->bad_eol)
		CHECK(!has_bare(r->out, r->out_len, 0));
	CHECK(d->at_line_start ==
	      (r->out_len == 0 ||
	       (r->out_len >= 2 && memcmp(r->out + r->out_len - 2, "\r\n", 2) == 0)));
	CHECK(d->headers_end >= -1 && (d->headers_end == -1) == (d->in_headers != 0));
	if (d->headers_end >= 0) {
		CHECK((uint64_t)d->headers_end + 2 <= r->out_len);
		CHECK(memcmp(r->out + d->headers_end, "\r\n", 2) == 0);
		CHECK(d->headers_end == 0 || memcmp(r->out + d->headers_end - 2, "\r\n", 2) == 0);
	}
}

static void one_mode(enum smtp_data_mode mode, const char *in, size_t n, size_t at)
{
	struct run whole, split, bytes;
	size_t i;

	run_init(&whole, mode, n);
	feed(&whole, in, n);
	invariants(&whole, mode, in, n);

	run_init(&split, mode, n);
	feed(&split, in, at);
	feed(&split, in + at, n - at);
	same(&whole, &split);

	if (n <= 512) {
		run_init(&bytes, mode, n);
		for (i = 0; i < n; i++)
			feed(&bytes, in + i, 1);
		same(&whole, &bytes);
		free(bytes.out);
	}
	free(whole.out);
	free(split.out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data + 1;
	size_t n, at;

	if (size < 1)
		return 0;
	n = size - 1;
	at = n ? (size_t)data[0] * n / 255 : 0;
	one_mode(SMTP_DATA_DOT, in, n, at);
	one_mode(SMTP_DATA_RAW, in, n, at);
	return 0;
}
