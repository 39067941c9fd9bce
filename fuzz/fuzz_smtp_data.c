/*
 * libFuzzer target for smtpd/smtp_data. The first input byte picks a split
 * position, the rest is DATA/BDAT content. In both modes the content is
 * decoded whole, in two pieces cut at that position, in two pieces cut
 * between the CR and the LF of the first empty line (the split-CR case:
 * the empty line that ends the headers arriving in two reads), and (for
 * short inputs) byte by byte, each into exact-size heap buffers so that
 * writing one byte past the promised room is caught by AddressSanitizer.
 * Each run ends with smtp_data_end() as the session's does.
 *
 * Invariants: every way of cutting gives identical output and flags, and
 * reports the end of the headers in exactly one call, at headers_end (so
 * the session's added headers land at the same place, before the empty
 * line); a call outputs at most one byte more than it consumed, and in
 * total never more; the size counts the one byte held back; RAW output equals its input; DOT output
 * ends with CRLF when done; a message without bad_eol has no bare CR or LF; headers_end points at a
 * CRLF; the counters agree; the hop count and Message-ID value agree across cuts and
 * fit the output.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtpd/smtp_data.h"
#include "fuzz_util.h"

struct run {
	char *out;
	size_t out_len;
	size_t consumed;
	struct smtp_data d;
	int bad_before_end; /* bad_eol before smtp_data_end() */
	int64_t split;      /* where the headers were reported to end, or -1 */
	int splits;         /* how many calls reported it */
};

/* The session's question after every call: do the headers end here? */
static void note_split(struct run *r, size_t ol)
{
	size_t at;

	if (smtp_data_headers_split(&r->d, ol, &at)) {
		CHECK(at + 2 <= ol);
		r->split = (int64_t)(r->out_len + at);
		r->splits++;
	}
}

static void take(struct run *r, const char *tmp, size_t ol)
{
	note_split(r, ol);
	memcpy(r->out + r->out_len, tmp, ol);
	r->out_len += ol;
}

/* One feed call with an output buffer of exactly the promised room. */
static void feed(struct run *r, const char *in, size_t n)
{
	char *tmp = malloc(SMTP_DATA_OUT_MAX(n));
	size_t used, ol = (size_t)-1;

	CHECK(tmp);
	if (r->d.done) {
		free(tmp);
		return;
	}
	used = smtp_data_feed(&r->d, in, n, tmp, &ol);
	CHECK(used <= n && ol <= SMTP_DATA_OUT_MAX(used));
	CHECK(r->d.done || used == n);
	take(r, tmp, ol);
	r->consumed += used;
	CHECK(r->out_len <= r->consumed);
	/* the size counts a held-back CR; RAW content is all of the input */
	CHECK(smtp_data_size(&r->d) - r->out_len <= 1);
	CHECK(r->d.mode != SMTP_DATA_RAW || smtp_data_size(&r->d) == r->consumed);
	free(tmp);
}

static void finish(struct run *r)
{
	char *tmp = malloc(1);
	size_t ol;

	CHECK(tmp);
	r->bad_before_end = r->d.bad_eol;
	ol = smtp_data_end(&r->d, tmp);
	CHECK(ol <= 1 && (ol == 0 || !r->d.done));
	take(r, tmp, ol);
	CHECK(smtp_data_end(&r->d, tmp) == 0);
	free(tmp);
}

static void run_init(struct run *r, enum smtp_data_mode mode, size_t n)
{
	memset(r, 0, sizeof(*r));
	smtp_data_init(&r->d, mode);
	r->out = malloc(n ? n : 1);
	r->split = -1;
	CHECK(r->out);
}

static void same(const struct run *a, const struct run *b)
{
	CHECK(a->out_len == b->out_len && memcmp(a->out, b->out, a->out_len) == 0);
	CHECK(a->consumed == b->consumed);
	CHECK(a->d.bad_eol == b->d.bad_eol && a->bad_before_end == b->bad_before_end);
	CHECK(a->d.done == b->d.done && a->d.out_bytes == b->d.out_bytes);
	CHECK(a->d.in_headers == b->d.in_headers && a->d.headers_end == b->d.headers_end);
	CHECK(a->d.has_message_id == b->d.has_message_id && a->d.has_date == b->d.has_date);
	CHECK(a->d.n_received == b->d.n_received && a->d.msgid_len == b->d.msgid_len &&
	      memcmp(a->d.msgid, b->d.msgid, a->d.msgid_len) == 0);
	CHECK(a->d.at_line_start == b->d.at_line_start);
	CHECK(a->split == b->split && a->splits == b->splits);
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
		CHECK(!d->done && r->out_len == n && memcmp(r->out, in, n) == 0);
		/* RAW flags exactly the bare line ends, a final CR once ended */
		CHECK(r->bad_before_end == has_bare(in, n, 0));
		CHECK(d->bad_eol == has_bare(in, n, 1));
	}
	if (d->done)
		CHECK(r->out_len == 0 ||
		      (r->out_len >= 2 && memcmp(r->out + r->out_len - 2, "\r\n", 2) == 0));
	if (!r->bad_before_end)
		CHECK(!has_bare(r->out, r->out_len, 0));
	CHECK(d->at_line_start ==
	      (r->out_len == 0 ||
	       (r->out_len >= 2 && memcmp(r->out + r->out_len - 2, "\r\n", 2) == 0)));
	CHECK(d->headers_end >= -1 && (d->headers_end == -1) == (d->in_headers != 0));
	/* the hop count and the Message-ID come from the header section */
	CHECK(d->n_received >= 0 && (uint64_t)d->n_received * 9 <= r->out_len);
	CHECK(d->msgid_len <= SMTP_DATA_MSGID_MAX && (d->msgid_len == 0 || d->has_message_id));
	/* the session puts its headers where the decoder said, once */
	CHECK(r->split == d->headers_end && r->splits == (d->headers_end >= 0));
	if (d->headers_end >= 0) {
		CHECK((uint64_t)d->headers_end + 2 <= r->out_len);
		CHECK(memcmp(r->out + d->headers_end, "\r\n", 2) == 0);
		CHECK(d->headers_end == 0 || memcmp(r->out + d->headers_end - 2, "\r\n", 2) == 0);
	}
}

/* Cut between the CR and LF of the first empty line in the input, if any. */
static size_t empty_line_cut(const char *in, size_t n)
{
	size_t i;

	if (n >= 2 && in[0] == '\r' && in[1] == '\n')
		return 1;
	for (i = 0; i + 3 < n; i++)
		if (memcmp(in + i, "\r\n\r\n", 4) == 0)
			return i + 3;
	return 0;
}

static void cut_in_two(struct run *r, enum smtp_data_mode mode, const char *in, size_t n, size_t at)
{
	run_init(r, mode, n);
	feed(r, in, at);
	feed(r, in + at, n - at);
	finish(r);
}

static void one_mode(enum smtp_data_mode mode, const char *in, size_t n, size_t at)
{
	struct run whole, split, cr, bytes;
	size_t i;

	run_init(&whole, mode, n);
	feed(&whole, in, n);
	finish(&whole);
	invariants(&whole, mode, in, n);

	cut_in_two(&split, mode, in, n, at);
	same(&whole, &split);
	cut_in_two(&cr, mode, in, n, empty_line_cut(in, n));
	same(&whole, &cr);

	if (n <= 512) {
		run_init(&bytes, mode, n);
		for (i = 0; i < n; i++)
			feed(&bytes, in + i, 1);
		finish(&bytes);
		same(&whole, &bytes);
		free(bytes.out);
	}
	free(whole.out);
	free(split.out);
	free(cr.out);
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
