/*
 * Unit tests for smtpd/smtp_data (PURE): dot-unstuffing and the end of
 * DATA, the SMTP smuggling guard (bare CR / bare LF), RAW (BDAT) mode and
 * the header watch. Every case is decoded whole, byte by byte, split at
 * every single position and in random pieces, and all must agree; a
 * randomized test also checks the decoder against a whole-buffer reference
 * written independently of the state machine.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "smtpd/smtp_data.h"
#include "util/util.h"

/* ---------- harness ---------- */

struct result {
	char *out;
	size_t out_len;
	size_t consumed;
	struct smtp_data d;
	int64_t split; /* where smtp_data_headers_split() put the headers, or -1 */
	int splits;
};

/* Deterministic pseudo-random numbers (xorshift) so failures repeat. */
static uint32_t rnd_state = 2463534242u;

static uint32_t rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 17;
	rnd_state ^= rnd_state << 5;
	return rnd_state;
}

/* How one run cuts its input: whole, byte by byte, once at `at`, or in
 * random pieces (zero-length feeds included). */
enum cut { CUT_WHOLE, CUT_BYTES, CUT_AT, CUT_RANDOM };

static size_t piece_len(enum cut how, size_t at, size_t done, size_t left)
{
	size_t p;

	switch (how) {
	case CUT_WHOLE:
		return left;
	case CUT_BYTES:
		return left ? 1 : 0;
	case CUT_AT:
		p = done < at ? at - done : left;
		return p < left ? p : left;
	default:
		p = rnd() % 9;
		return p < left ? p : left;
	}
}

/* Where one call's output showed the end of the headers, as the session
 * sees it: split is the offset in the whole output, splits the count of
 * calls that reported it (must be at most one). */
static void note_split(struct result *r, size_t ol)
{
	size_t at;

	if (smtp_data_headers_split(&r->d, ol, &at)) {
		assert_true(at < ol);
		r->split = (int64_t)(r->out_len + at);
		r->splits++;
	}
}

static void decode(enum smtp_data_mode mode, const char *in, size_t n, enum cut how, size_t at,
                   struct result *r)
{
	char *tmp = xmalloc(SMTP_DATA_OUT_MAX(n));
	size_t p, used, ol;
	int feeds = 0;

	smtp_data_init(&r->d, mode);
	r->out = xmalloc(SMTP_DATA_OUT_MAX(n));
	r->out_len = 0;
	r->consumed = 0;
	r->split = -1;
	r->splits = 0;
	while (r->consumed < n && !r->d.done && feeds++ < 100000) {
		p = piece_len(how, at, r->consumed, n - r->consumed);
		ol = (size_t)-1;
		used = smtp_data_feed(&r->d, in + r->consumed, p, tmp, &ol);
		/* a held-back CR is the only byte more than the input */
		assert_true(ol <= SMTP_DATA_OUT_MAX(p));
		assert_true(used <= p);
		if (!r->d.done)
			assert_int_equal(used, p);
		note_split(r, ol);
		memcpy(r->out + r->out_len, tmp, ol);
		r->out_len += ol;
		r->consumed += used;
		assert_int_equal(r->d.out_bytes, r->out_len);
		assert_true(r->out_len <= r->consumed);
	}
	ol = smtp_data_end(&r->d, tmp);
	assert_true(ol <= 1 && (ol == 0 || !r->d.done));
	note_split(r, ol);
	memcpy(r->out + r->out_len, tmp, ol);
	r->out_len += ol;
	assert_int_equal(r->d.out_bytes, r->out_len);
	assert_true(r->splits <= 1);
	assert_int_equal(r->split, r->d.headers_end);
	free(tmp);
}

static void result_free(struct result *r)
{
	free(r->out);
	r->out = NULL;
}

static void assert_same(const struct result *a, const struct result *b)
{
	assert_int_equal(a->out_len, b->out_len);
	assert_memory_equal(a->out, b->out, a->out_len);
	assert_int_equal(a->consumed, b->consumed);
	assert_int_equal(a->d.done, b->d.done);
	assert_int_equal(a->d.bad_eol, b->d.bad_eol);
	assert_int_equal(a->d.in_headers, b->d.in_headers);
	assert_int_equal(a->d.has_message_id, b->d.has_message_id);
	assert_int_equal(a->d.has_date, b->d.has_date);
	assert_int_equal(a->d.n_received, b->d.n_received);
	assert_int_equal(a->d.msgid_len, b->d.msgid_len);
	assert_memory_equal(a->d.msgid, b->d.msgid, a->d.msgid_len);
	assert_int_equal(a->d.headers_end, b->d.headers_end);
	assert_int_equal(a->d.at_line_start, b->d.at_line_start);
	assert_true(a->d.out_bytes == b->d.out_bytes);
	assert_int_equal(a->split, b->split);
}

/* Decode whole into *r, and check that every other way of cutting the
 * input gives the same. */
static void decode_all_ways(enum smtp_data_mode mode, const char *in, size_t n, struct result *r)
{
	struct result o;
	size_t at;
	int i;

	decode(mode, in, n, CUT_WHOLE, 0, r);
	decode(mode, in, n, CUT_BYTES, 0, &o);
	assert_same(r, &o);
	result_free(&o);
	for (at = 0; at <= n; at++) {
		decode(mode, in, n, CUT_AT, at, &o);
		assert_same(r, &o);
		result_free(&o);
	}
	for (i = 0; i < 20; i++) {
		decode(mode, in, n, CUT_RANDOM, 0, &o);
		assert_same(r, &o);
		result_free(&o);
	}
}

struct want {
	const char *in;
	const char *out;
	int done;
	int bad_eol;
};

/* DOT mode: the table's input gives exactly that output and flags; when
 * done, the input is consumed up to its end. */
static void check_dot(const struct want *w)
{
	struct result r;

	decode_all_ways(SMTP_DATA_DOT, w->in, strlen(w->in), &r);
	if (r.out_len != strlen(w->out) || memcmp(r.out, w->out, r.out_len) != 0)
		fail_msg("input \"%s\": got %zu bytes \"%.*s\"", w->in, r.out_len, (int)r.out_len,
		         r.out);
	assert_int_equal(r.d.done, w->done);
	assert_int_equal(r.d.bad_eol, w->bad_eol);
	assert_int_equal(r.consumed, strlen(w->in));
	result_free(&r);
}

static void check_dot_table(const struct want *t, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		check_dot(&t[i]);
}

/* ---------- DOT mode ---------- */

static void test_dot_simple(void **state)
{
	const char *in = "Subject: hi\r\n\r\nbody\r\n.\r\n";
	struct result r;

	(void)state;
	decode_all_ways(SMTP_DATA_DOT, in, strlen(in), &r);
	assert_int_equal(r.out_len, strlen("Subject: hi\r\n\r\nbody\r\n"));
	assert_memory_equal(r.out, "Subject: hi\r\n\r\nbody\r\n", r.out_len);
	assert_int_equal(r.consumed, strlen(in));
	assert_true(r.d.done);
	assert_false(r.d.bad_eol);
	assert_int_equal(r.d.headers_end, 13);
	assert_false(r.d.in_headers);
	assert_true(r.d.at_line_start);
	result_free(&r);
}

static void test_dot_pipelined_rest(void **state)
{
	const char *in = "a\r\n.\r\nQUIT\r\n";
	struct smtp_data d;
	char out[32];
	size_t ol, used;
	struct result r;

	(void)state;
	decode_all_ways(SMTP_DATA_DOT, in, strlen(in), &r);
	assert_int_equal(r.consumed, 6);
	assert_int_equal(r.out_len, 3);
	assert_memory_equal(r.out, "a\r\n", 3);
	assert_true(r.d.done);
	result_free(&r);
	/* once done, nothing more is taken */
	smtp_data_init(&d, SMTP_DATA_DOT);
	used = smtp_data_feed(&d, in, strlen(in), out, &ol);
	assert_int_equal(used, 6);
	used = smtp_data_feed(&d, in + 6, 6, out, &ol);
	assert_int_equal(used, 0);
	assert_int_equal(ol, 0);
	used = smtp_data_feed(&d, "", 0, out, &ol);
	assert_int_equal(used, 0);
	assert_int_equal(ol, 0);
}

static void test_dot_empty_message(void **state)
{
	static const struct want t[] = {
	    {".\r\n", "", 1, 0},
	    {"\r\n.\r\n", "\r\n", 1, 0},
	    {"\r\n\r\n.\r\n", "\r\n\r\n", 1, 0},
	    {"", "", 0, 0},
	    {".", "", 0, 0},
	    {".\r", "", 0, 0},
	};
	struct result r;

	(void)state;
	check_dot_table(t, ARRAY_LEN(t));
	decode(SMTP_DATA_DOT, "\r\n.\r\n", 5, CUT_WHOLE, 0, &r);
	assert_int_equal(r.d.headers_end, 0);
	result_free(&r);
	decode(SMTP_DATA_DOT, ".\r\n", 3, CUT_WHOLE, 0, &r);
	assert_int_equal(r.d.headers_end, -1);
	assert_true(r.d.at_line_start);
	result_free(&r);
}

static void test_dot_unstuffing(void **state)
{
	static const struct want t[] = {
	    {"..x\r\n.\r\n", ".x\r\n", 1, 0},
	    {"...\r\n.\r\n", "..\r\n", 1, 0},
	    {"..\r\n.\r\n", ".\r\n", 1, 0},
	    {"a\r\n..\r\n.\r\n", "a\r\n.\r\n", 1, 0},
	    {"a\r\n..\r\n..\r\n.\r\n", "a\r\n.\r\n.\r\n", 1, 0},
	    /* RFC 5321 4.5.2: any leading dot goes, not only a doubled one */
	    {".x\r\n.\r\n", "x\r\n", 1, 0},
	    {"a\r\n. \r\n.\r\n", "a\r\n \r\n", 1, 0},
	    /* dots elsewhere are data */
	    {"a.b\r\n.\r\n", "a.b\r\n", 1, 0},
	    {"a.\r\n.\r\n", "a.\r\n", 1, 0},
	    {"a\r\n .\r\n.\r\n", "a\r\n .\r\n", 1, 0},
	    /* no end yet */
	    {"a\r\n..\r\n", "a\r\n.\r\n", 0, 0},
	    {"a\r\n.x", "a\r\nx", 0, 0},
	};

	(void)state;
	check_dot_table(t, ARRAY_LEN(t));
}

/* SMTP smuggling: none of these is an end of data; each sets bad_eol and
 * keeps the bare CR/LF; the real CRLF.CRLF after it ends the data. */
static void test_dot_smuggling(void **state)
{
	static const struct want t[] = {
	    {"a\n.\nb\r\n.\r\n", "a\n.\nb\r\n", 1, 1},
	    {"a\r\n.\nb\r\n.\r\n", "a\r\n\nb\r\n", 1, 1},
	    {"a\n.\r\nb\r\n.\r\n", "a\n.\r\nb\r\n", 1, 1},
	    {"a\r.\r\nb\r\n.\r\n", "a\r.\r\nb\r\n", 1, 1},
	    {"a\r.\rb\r\n.\r\n", "a\r.\rb\r\n", 1, 1},
	    {"a\n.\rb\r\n.\r\n", "a\n.\rb\r\n", 1, 1},
	    {"a\r\n.\r.\r\n", "a\r\n.\r\n", 0, 1},
	    /* ".\r" + not LF at a line start: the CR goes with the dot (see
	     * the contract in smtp_data.c) */
	    {"a\r\n.\rb\r\n.\r\n", "a\r\nb\r\n", 1, 1},
	    {"a\r\n.\r\r\n.\r\n", "a\r\n\r\n", 1, 1},
	    {"a\r\n.\r\n", "a\r\n", 1, 0},
	    {"\n.\n", "\n.\n", 0, 1},
	    {"\n.\r\n", "\n.\r\n", 0, 1},
	    {"\r\n.\n", "\r\n\n", 0, 1},
	    {"\r.\r\n", "\r.\r\n", 0, 1},
	    {"a\r\n.\n\r\n.\r\n", "a\r\n\n\r\n", 1, 1},
	    {"a\r\r\n.\r\n", "a\r\r\n", 1, 1},
	    {"a\n\r\n.\r\n", "a\n\r\n", 1, 1},
	    {"a\r\n\n.\r\n\r\n.\r\n", "a\r\n\n.\r\n\r\n", 1, 1},
	    {"a\r\n\r.\r\n\r\n.\r\n", "a\r\n\r.\r\n\r\n", 1, 1},
	    {"a\r\n.\n.\r\n.\r\n", "a\r\n\n.\r\n", 1, 1},
	};

	(void)state;
	check_dot_table(t, ARRAY_LEN(t));
}

static void test_dot_bare_passthrough(void **state)
{
	static const struct want t[] = {
	    {"a\nb\rc\r\n.\r\n", "a\nb\rc\r\n", 1, 1},
	    {"a\r\r\r\nb\r\n.\r\n", "a\r\r\r\nb\r\n", 1, 1},
	    {"\n\n\n\r\n.\r\n", "\n\n\n\r\n", 1, 1},
	    {"a\r", "a\r", 0, 0}, /* a CR whose LF has not come yet */
	    {"a\r\r", "a\r\r", 0, 1},
	    {"plain\r\nlines\r\n.\r\n", "plain\r\nlines\r\n", 1, 0},
	};

	(void)state;
	check_dot_table(t, ARRAY_LEN(t));
}

static void test_dot_nul_and_8bit(void **state)
{
	const char in[] = "a\0b\xff\xc3\r\n.\r\n";
	struct result r;

	(void)state;
	decode_all_ways(SMTP_DATA_DOT, in, sizeof(in) - 1, &r);
	assert_int_equal(r.out_len, 7);
	assert_memory_equal(r.out, "a\0b\xff\xc3\r\n", 7);
	assert_true(r.d.done);
	assert_false(r.d.bad_eol);
	result_free(&r);
}

/* ---------- RAW mode ---------- */

static void test_raw_passthrough(void **state)
{
	const char *in = "..x\r\n.\r\nSubject: a\r\n\r\n.\r\n";
	struct result r;

	(void)state;
	decode_all_ways(SMTP_DATA_RAW, in, strlen(in), &r);
	assert_int_equal(r.out_len, strlen(in));
	assert_memory_equal(r.out, in, r.out_len);
	assert_int_equal(r.consumed, strlen(in));
	assert_false(r.d.done);
	assert_false(r.d.bad_eol);
	assert_int_equal(r.d.headers_end, 20);
	result_free(&r);
}

static void test_raw_bad_eol(void **state)
{
	static const char *const bad[] = {"a\nb", "a\rb", "\n", "\r\r\n", "a\r\n\n.\n"};
	struct smtp_data d;
	struct result r;
	char out[8];
	size_t i, ol;

	(void)state;
	for (i = 0; i < ARRAY_LEN(bad); i++) {
		decode_all_ways(SMTP_DATA_RAW, bad[i], strlen(bad[i]), &r);
		assert_true(r.d.bad_eol);
		assert_int_equal(r.out_len, strlen(bad[i]));
		result_free(&r);
	}
	/* CRLF split across two BDAT chunks is fine */
	smtp_data_init(&d, SMTP_DATA_RAW);
	smtp_data_feed(&d, "a\r", 2, out, &ol);
	assert_false(d.at_line_start);
	smtp_data_feed(&d, "\nb\r\n", 4, out, &ol);
	assert_int_equal(smtp_data_end(&d, out), 0);
	assert_false(d.bad_eol);
	assert_true(d.at_line_start);
	/* a CR that ends the last chunk was bare */
	smtp_data_init(&d, SMTP_DATA_RAW);
	smtp_data_feed(&d, "a\r\nb\r", 5, out, &ol);
	assert_false(d.bad_eol);
	assert_int_equal(smtp_data_end(&d, out), 0);
	assert_true(d.bad_eol);
	/* BDAT 0 LAST: an empty feed */
	smtp_data_init(&d, SMTP_DATA_RAW);
	assert_int_equal(smtp_data_feed(&d, "", 0, out, &ol), 0);
	assert_int_equal(ol, 0);
	assert_int_equal(smtp_data_end(&d, out), 0);
	assert_false(d.bad_eol);
	assert_true(d.at_line_start);
}

/* ---------- header watch ---------- */

struct hdr_want {
	const char *in;
	int message_id;
	int date;
	int64_t headers_end;
};

static void check_headers(enum smtp_data_mode mode, const struct hdr_want *t, size_t n)
{
	struct result r;
	size_t i;

	for (i = 0; i < n; i++) {
		decode_all_ways(mode, t[i].in, strlen(t[i].in), &r);
		if (r.d.has_message_id != t[i].message_id || r.d.has_date != t[i].date ||
		    r.d.headers_end != t[i].headers_end)
			fail_msg("\"%s\": message-id %d date %d end %lld", t[i].in,
			         r.d.has_message_id, r.d.has_date, (long long)r.d.headers_end);
		assert_int_equal(r.d.in_headers, t[i].headers_end < 0);
		if (t[i].headers_end >= 0)
			assert_memory_equal(r.out + t[i].headers_end, "\r\n", 2);
		result_free(&r);
	}
}

static void test_headers_detect(void **state)
{
	static const struct hdr_want t[] = {
	    {"Message-ID: <x@y>\r\nDate: Mon\r\n\r\nbody\r\n", 1, 1, 30},
	    {"message-id: x\r\nDATE: y\r\n\r\n", 1, 1, 24},
	    {"MESSAGE-ID:x\r\n\r\n", 1, 0, 14},
	    {"dAtE:x\r\n\r\n", 0, 1, 8},
	    {"Date : x\r\n\r\n", 0, 1, 10}, /* obsolete WSP before the colon */
	    {"Message-ID\t:x\r\n\r\n", 1, 0, 15},
	    {"X-Date: y\r\nDates: z\r\nMessage-IDs: w\r\nResent-Date: v\r\n\r\n", 0, 0, 53},
	    {"Subject: a\r\n Date: b\r\n\tMessage-ID: c\r\n\r\n", 0, 0, 38},
	    {"Subject: a\r\n\r\nDate: b\r\nMessage-ID: c\r\n", 0, 0, 12},
	    {"Subject: no end\r\nDate: x\r\n", 0, 1, -1},
	    {"Date:", 0, 1, -1},
	    {"Date", 0, 0, -1},
	    {"X-A-Very-Long-Field-Name-Date: x\r\n\r\n", 0, 0, 34},
	    {"Date                :x\r\n\r\n", 0, 0, 24}, /* name too long to be ours */
	    {"\r\nDate: x\r\n", 0, 0, 0},
	    {"Subject: a\r\n\rDate: x\r\n\r\n", 0, 0, 22}, /* bare CR at a line start */
	    {"Subject: a\nDate: x\r\n\r\n", 0, 0, 20},     /* bare LF starts no line */
	    {"Sub\r\r\nDate: x\r\n\r\n", 0, 1, 15},
	    {"", 0, 0, -1},
	};

	(void)state;
	check_headers(SMTP_DATA_RAW, t, ARRAY_LEN(t));
}

static void test_headers_dot_mode(void **state)
{
	static const struct hdr_want t[] = {
	    {"Date: x\r\nMessage-ID: y\r\n\r\nb\r\n.\r\n", 1, 1, 24},
	    /* the watch sees the unstuffed output */
	    {".Date: x\r\n\r\n.\r\n", 0, 1, 9},
	    {"..Date: x\r\n\r\n.\r\n", 0, 0, 10},
	    {"Subject: x\r\n.\r\n", 0, 0, -1},
	    {"Subject: x\r\n.\r\nDate: y\r\n", 0, 0, -1},
	    {"\r\n.\r\n", 0, 0, 0},
	};

	(void)state;
	check_headers(SMTP_DATA_DOT, t, ARRAY_LEN(t));
}

/* The hop count: Received fields of the header section, each once however
 * folded, in any case, never in the body or on a continuation line. */
static void test_received_count(void **state)
{
	static const struct {
		enum smtp_data_mode mode;
		const char *in;
		int n;
	} t[] = {
	    {SMTP_DATA_RAW, "Received: a\r\nReceived: b\r\n\r\nbody\r\n", 2},
	    {SMTP_DATA_RAW, "Received: from a\r\n\tby b\r\n (c)\r\nSubject: x\r\n\r\n", 1},
	    {SMTP_DATA_RAW, "RECEIVED: a\r\nreceived :b\r\nReCeIvEd:c\r\n\r\n", 3},
	    {SMTP_DATA_RAW, "X-Received: a\r\nReceived-SPF: b\r\nReceivedx: c\r\n\r\n", 0},
	    {SMTP_DATA_RAW, "Subject: x\r\n Received: y\r\n\r\n", 0},
	    {SMTP_DATA_RAW, "Subject: x\r\n\r\nReceived: y\r\nReceived: z\r\n", 0},
	    {SMTP_DATA_RAW, "Received: a\r\nReceived: b", 2}, /* no empty line: all header */
	    {SMTP_DATA_RAW, "Received", 0},
	    {SMTP_DATA_DOT, ".Received: a\r\nReceived: b\r\n\r\nReceived: c\r\n.\r\n", 2},
	    {SMTP_DATA_DOT, "Subject: a\r\n\r\n.Received: c\r\n.\r\n", 0},
	};
	struct result r;
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_LEN(t); i++) {
		decode_all_ways(t[i].mode, t[i].in, strlen(t[i].in), &r);
		if (r.d.n_received != t[i].n)
			fail_msg("\"%s\": %d Received, want %d", t[i].in, r.d.n_received, t[i].n);
		result_free(&r);
	}
}

/* The first Message-ID's value, unfolded and trimmed, for the log. */
static void test_message_id_value(void **state)
{
	static const struct {
		const char *in;
		const char *want;
	} t[] = {
	    {"Message-ID: <a@b>\r\n\r\n", "<a@b>"},
	    {"message-id:<a@b>  \t\r\nSubject: x\r\n\r\n", "<a@b>"},
	    {"Message-ID:\r\n <a@b>\r\n\r\n", "<a@b>"},
	    {"Message-ID: <a@\r\n\tb>\r\n\r\n", "<a@\tb>"},
	    {"Message-ID: <first@x>\r\nMessage-ID: <second@x>\r\n\r\n", "<first@x>"},
	    {"Subject: x\r\n Message-ID: <no@x>\r\n\r\n", ""},
	    {"Subject: x\r\n\r\nMessage-ID: <body@x>\r\n", ""},
	    {"Message-ID: <a@b>", "<a@b>"},
	    {"Subject: x\r\n\r\n", ""},
	};
	char big[400], got[SMTP_DATA_MSGID_MAX + 1], small[4];
	struct result r;
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_LEN(t); i++) {
		decode_all_ways(SMTP_DATA_RAW, t[i].in, strlen(t[i].in), &r);
		smtp_data_message_id(&r.d, got, sizeof(got));
		if (strcmp(got, t[i].want) != 0)
			fail_msg("\"%s\": got \"%s\"", t[i].in, got);
		result_free(&r);
	}
	/* a value longer than the bound is cut there; a small buffer cuts more */
	memcpy(big, "Message-ID: <", 13);
	memset(big + 13, 'x', 300);
	memcpy(big + 313, ">\r\n\r\n", 6);
	decode_all_ways(SMTP_DATA_RAW, big, 319, &r);
	smtp_data_message_id(&r.d, got, sizeof(got));
	assert_int_equal(strlen(got), SMTP_DATA_MSGID_MAX);
	assert_int_equal(got[0], '<');
	smtp_data_message_id(&r.d, small, sizeof(small));
	assert_string_equal(small, "<xx");
	result_free(&r);
}

/* The first Subject's value, unfolded (CRLF removed, the fold's white
 * space kept) and trimmed, still encoded; cut at SMTP_DATA_SUBJECT_MAX. */
static void test_subject_value(void **state)
{
	static const struct {
		const char *in;
		const char *want;
	} t[] = {
	    {"Subject: Hello\r\n\r\n", "Hello"},
	    {"subject:\tA long\r\n subject line  \r\nTo: x\r\n\r\n", "A long subject line"},
	    {"Subject: =?utf-8?q?a?=\r\n\t=?utf-8?q?b?=\r\n\r\n", "=?utf-8?q?a?=\t=?utf-8?q?b?="},
	    {"Subject: first\r\nSubject: second\r\n\r\n", "first"},
	    {"X-Subject: no\r\n\r\nSubject: body\r\n", ""},
	    {"Subject:\r\n\r\n", ""},
	};
	char big[1200], got[SMTP_DATA_SUBJECT_MAX + 1];
	struct result r;
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_LEN(t); i++) {
		decode_all_ways(SMTP_DATA_RAW, t[i].in, strlen(t[i].in), &r);
		smtp_data_subject(&r.d, got, sizeof(got));
		if (strcmp(got, t[i].want) != 0)
			fail_msg("\"%s\": got \"%s\"", t[i].in, got);
		result_free(&r);
	}
	memcpy(big, "Subject: ", 9);
	memset(big + 9, 's', 1100);
	memcpy(big + 1109, "\r\n\r\n", 5);
	decode_all_ways(SMTP_DATA_RAW, big, 1113, &r);
	smtp_data_subject(&r.d, got, sizeof(got));
	assert_int_equal(strlen(got), SMTP_DATA_SUBJECT_MAX);
	result_free(&r);
}

/* headers_end is where new header lines go: inserting there keeps them
 * inside the header block. */
static void test_headers_end_insert(void **state)
{
	const char *in = "From: a@b\r\nSubject: s\r\n\r\nbody\r\n.\r\n";
	char msg[256];
	struct result r;
	int64_t e;

	(void)state;
	decode(SMTP_DATA_DOT, in, strlen(in), CUT_BYTES, 0, &r);
	e = r.d.headers_end;
	assert_int_equal(e, 23);
	snprintf(msg, sizeof(msg), "%.*sDate: now\r\n%.*s", (int)e, r.out,
	         (int)(r.out_len - (size_t)e), r.out + e);
	assert_string_equal(msg, "From: a@b\r\nSubject: s\r\nDate: now\r\n\r\nbody\r\n");
	result_free(&r);
}

static void test_at_line_start(void **state)
{
	struct smtp_data d;
	char out[16];
	size_t ol;

	(void)state;
	smtp_data_init(&d, SMTP_DATA_DOT);
	assert_true(d.at_line_start);
	assert_int_equal(d.headers_end, -1);
	assert_true(d.in_headers);
	smtp_data_feed(&d, "ab", 2, out, &ol);
	assert_false(d.at_line_start);
	smtp_data_feed(&d, "\r", 1, out, &ol);
	assert_false(d.at_line_start);
	smtp_data_feed(&d, "\n", 1, out, &ol);
	assert_true(d.at_line_start);
	smtp_data_feed(&d, ".", 1, out, &ol); /* held back: output unchanged */
	assert_int_equal(ol, 0);
	assert_true(d.at_line_start);
	smtp_data_feed(&d, "\r", 1, out, &ol);
	assert_true(d.at_line_start);
	smtp_data_feed(&d, "\n", 1, out, &ol);
	assert_true(d.done);
	assert_true(d.at_line_start);
	assert_true(d.out_bytes == 4);
}

/* ---------- randomized ---------- */

/* Independent whole-buffer reference for DOT mode, line by line. */
static void ref_dot(const char *in, size_t n, char *out, size_t *olen, size_t *consumed, int *done,
                    int *bad)
{
	size_t i = 0, o = 0, j, k, s;

	*done = *bad = 0;
	for (;;) {
		if (n - i >= 3 && memcmp(in + i, ".\r\n", 3) == 0) {
			*done = 1;
			i += 3;
			break;
		}
		if ((n - i == 1 && in[i] == '.') || (n - i == 2 && memcmp(in + i, ".\r", 2) == 0)) {
			i = n; /* held back, undecided */
			break;
		}
		for (j = i; j + 1 < n && !(in[j] == '\r' && in[j + 1] == '\n'); j++)
			;
		if (j + 1 >= n)
			j = n; /* no CRLF: the rest is an unfinished line */
		s = i;
		if (s < j && in[s] == '.') {
			s++;
			if (s < j && in[s] == '\r') {
				s++; /* ".\r" + not LF: dropped with the dot */
				*bad = 1;
			}
		}
		for (k = s; k < j; k++) {
			if (in[k] == '\n' || (in[k] == '\r' && k + 1 < n))
				*bad = 1;
			out[o++] = in[k];
		}
		if (j >= n) {
			i = n;
			break;
		}
		out[o++] = '\r';
		out[o++] = '\n';
		i = j + 2;
	}
	*olen = o;
	*consumed = i;
}

/* Reference header watch on a whole output. */
static void ref_headers(const char *out, size_t n, int *mid, int *date, int *rcvd, int64_t *end)
{
	size_t i = 0, j, c, k;
	int ok;

	*mid = *date = *rcvd = 0;
	*end = -1;
	while (i < n) {
		for (j = i; j + 1 < n && !(out[j] == '\r' && out[j + 1] == '\n'); j++)
			;
		if (j + 1 >= n)
			j = n;
		if (j == i && j < n) {
			*end = (int64_t)i;
			return;
		}
		if (out[i] != ' ' && out[i] != '\t') {
			for (c = i; c < j && out[c] != ':'; c++)
				;
			ok = c < j && c - i <= 16;
			for (k = i; ok && k < c; k++)
				if (((unsigned char)out[k] < 0x20 && out[k] != '\t') ||
				    out[k] == 0x7f)
					ok = 0;
			while (ok && c > i && (out[c - 1] == ' ' || out[c - 1] == '\t'))
				c--;
			if (ok && c - i == 10 && ascii_ncasecmp(out + i, "message-id", 10) == 0)
				*mid = 1;
			if (ok && c - i == 4 && ascii_ncasecmp(out + i, "date", 4) == 0)
				*date = 1;
			if (ok && c - i == 8 && ascii_ncasecmp(out + i, "received", 8) == 0)
				(*rcvd)++;
		}
		i = j + 2;
	}
}

/* Random input, mostly made of the bytes and words that matter. */
static size_t random_input(char *in, size_t cap)
{
	static const char *const words[] = {
	    "Date:", "message-ID:", "Date :", "\r\n", ".\r\n", "\r\n\r\n",  "\r\n.", " ",
	    "\t",    ".",           "\r",     "\n",   "x",     "Received:", "\0"};
	size_t n = 0, want = rnd() % cap, w;
	uint32_t r;

	while (n < want) {
		r = rnd() % 20;
		if (r < ARRAY_LEN(words)) {
			w = r == ARRAY_LEN(words) - 1 ? 1 : strlen(words[r]);
			if (n + w > want)
				break;
			memcpy(in + n, words[r], w);
			n += w;
		} else {
			in[n++] = (char)(rnd() & 0xff);
		}
	}
	return n;
}

/* Random messages, mostly made of the bytes that matter, each decoded in
 * every way and compared with the reference. */
static void test_random_against_reference(void **state)
{
	char in[96], ref[96];
	struct result r;
	size_t n, rlen, rcons;
	int round, rdone, rbad, mid, date, rcvd;
	int64_t end;

	(void)state;
	for (round = 0; round < 3000; round++) {
		n = random_input(in, sizeof(in));
		if (round % 3 == 0 && n >= 5)
			memcpy(in + n - 5, "\r\n.\r\n", 5);
		decode_all_ways(SMTP_DATA_DOT, in, n, &r);
		ref_dot(in, n, ref, &rlen, &rcons, &rdone, &rbad);
		assert_int_equal(r.out_len, rlen);
		assert_memory_equal(r.out, ref, rlen);
		assert_int_equal(r.consumed, rcons);
		assert_int_equal(r.d.done, rdone);
		assert_int_equal(r.d.bad_eol, rbad);
		ref_headers(r.out, r.out_len, &mid, &date, &rcvd, &end);
		assert_int_equal(r.d.has_message_id, mid);
		assert_int_equal(r.d.has_date, date);
		assert_int_equal(r.d.n_received, rcvd);
		assert_int_equal(r.d.headers_end, end);
		assert_int_equal(r.d.at_line_start,
		                 r.out_len == 0 || (r.out_len >= 2 &&
		                                    memcmp(r.out + r.out_len - 2, "\r\n", 2) == 0));
		result_free(&r);
		/* RAW: identity, and the same header verdict */
		decode_all_ways(SMTP_DATA_RAW, in, n, &r);
		assert_int_equal(r.out_len, n);
		assert_memory_equal(r.out, in, n);
		ref_headers(in, n, &mid, &date, &rcvd, &end);
		assert_int_equal(r.d.has_message_id, mid);
		assert_int_equal(r.d.has_date, date);
		assert_int_equal(r.d.n_received, rcvd);
		assert_int_equal(r.d.headers_end, end);
		result_free(&r);
	}
}

/* Dot-stuff random lines as a client would, decode, get them back. */
static void test_random_roundtrip(void **state)
{
	struct buf msg, wire;
	struct result r;
	int round, lines, l, len, c;

	(void)state;
	for (round = 0; round < 300; round++) {
		buf_init(&msg);
		buf_init(&wire);
		lines = (int)(rnd() % 12);
		for (l = 0; l < lines; l++) {
			struct buf line;
			buf_init(&line);
			len = (int)(rnd() % 20);
			for (c = 0; c < len; c++) {
				char ch = "..ab :xyzDate-"[rnd() % 14];
				buf_append(&line, &ch, 1);
			}
			if (line.len && line.data[0] == '.')
				buf_append(&wire, ".", 1);
			buf_append(&wire, line.data, line.len);
			buf_append(&wire, "\r\n", 2);
			buf_append(&msg, line.data, line.len);
			buf_append(&msg, "\r\n", 2);
			buf_free(&line);
		}
		buf_append(&wire, ".\r\nNOOP\r\n", 9);
		decode_all_ways(SMTP_DATA_DOT, wire.data, wire.len, &r);
		assert_true(r.d.done);
		assert_false(r.d.bad_eol);
		assert_int_equal(r.consumed, wire.len - 6);
		assert_int_equal(r.out_len, msg.len);
		assert_memory_equal(r.out, msg.data, msg.len);
		result_free(&r);
		buf_free(&msg);
		buf_free(&wire);
	}
}

/* The empty line's CR and LF in two reads (or two BDAT chunks): the CR is
 * held back, and the whole empty line comes out of the call that brings
 * the LF, which reports the split. */
static void test_headers_split_cr(void **state)
{
	static const enum smtp_data_mode modes[] = {SMTP_DATA_DOT, SMTP_DATA_RAW};
	struct smtp_data d;
	char out[64];
	size_t n, at, i;

	(void)state;
	for (i = 0; i < ARRAY_LEN(modes); i++) {
		smtp_data_init(&d, modes[i]);
		smtp_data_feed(&d, "Subject: x\r\n\r", 13, out, &n);
		assert_int_equal(n, 12); /* the CR waits */
		assert_memory_equal(out, "Subject: x\r\n", 12);
		assert_true(smtp_data_size(&d) == 13); /* but counts */
		assert_false(smtp_data_headers_split(&d, n, &at));
		assert_false(d.at_line_start);
		smtp_data_feed(&d, "\nbody\r", 6, out, &n);
		assert_int_equal(n, 7); /* one more than its input: the CR */
		assert_memory_equal(out, "\r\nbody\r", 7);
		assert_true(smtp_data_headers_split(&d, n, &at));
		assert_int_equal(at, 0);
		assert_int_equal(d.headers_end, 12);
		assert_true(smtp_data_size(&d) == 19 && d.out_bytes == 19);
		/* a CR in the body is not held: the headers are over */
		smtp_data_feed(&d, "\n\r", 2, out, &n);
		assert_int_equal(n, 2);
		assert_false(smtp_data_headers_split(&d, n, &at));
		assert_false(d.bad_eol);
	}
	/* a held CR that turns out bare goes out with the byte after it */
	smtp_data_init(&d, SMTP_DATA_RAW);
	smtp_data_feed(&d, "A: b\r\n\r", 7, out, &n);
	assert_int_equal(n, 6);
	smtp_data_feed(&d, " x", 2, out, &n);
	assert_int_equal(n, 3);
	assert_memory_equal(out, "\r x", 3);
	assert_true(d.bad_eol);
	assert_false(smtp_data_headers_split(&d, n, &at));
	/* a CR inside a header line is not held */
	smtp_data_init(&d, SMTP_DATA_RAW);
	smtp_data_feed(&d, "A: b\r", 5, out, &n);
	assert_int_equal(n, 5);
	/* BDAT LAST ending in a held CR: end hands it out, and it was bare */
	smtp_data_init(&d, SMTP_DATA_RAW);
	smtp_data_feed(&d, "A: b\r\n\r", 7, out, &n);
	assert_int_equal(smtp_data_end(&d, out), 1);
	assert_int_equal(out[0], '\r');
	assert_true(d.bad_eol);
	assert_true(d.out_bytes == 7);
	assert_int_equal(smtp_data_end(&d, out), 0);
}

/* The session's assembly: output before the split, the missing headers,
 * the rest; or, without an empty line, the headers at the end. */
static void assemble(enum smtp_data_mode mode, const char *in, size_t cut, struct buf *msg)
{
	struct smtp_data d;
	char out[256];
	size_t n, at, parts[2] = {cut, strlen(in) - cut}, off = 0, i;
	struct buf h;
	int added = 0;

	smtp_data_init(&d, mode);
	for (i = 0; i <= 2; i++) {
		if (i < 2)
			off += smtp_data_feed(&d, in + off, parts[i], out, &n);
		else
			n = smtp_data_end(&d, out);
		at = n;
		buf_init(&h);
		if (!added && smtp_data_headers_split(&d, n, &at)) {
			smtp_data_missing_headers(&d, 0, "ID", "host.test", &h);
			added = 1;
		}
		buf_append(msg, out, at);
		buf_append(msg, h.data, h.len);
		buf_append(msg, out + at, n - at);
		buf_free(&h);
	}
	if (!added)
		smtp_data_missing_headers(&d, 0, "ID", "host.test", msg);
}

static void check_assembly(enum smtp_data_mode mode, const char *in, const char *want)
{
	struct buf msg;
	size_t cut;

	for (cut = 0; cut <= strlen(in); cut++) {
		buf_init(&msg);
		assemble(mode, in, cut, &msg);
		if (strcmp(msg.data, want) != 0)
			fail_msg("\"%s\" cut at %zu: got \"%s\"", in, cut, msg.data);
		buf_free(&msg);
	}
}

static void test_missing_headers(void **state)
{
	static const char date[] = "Date: Thu, 1 Jan 1970 00:00:00 +0000\r\n";
	static const char mid[] = "Message-ID: <ID@host.test>\r\n";
	char want[256];

	(void)state;
	/* before the empty line, wherever the input is cut */
	snprintf(want, sizeof(want), "Subject: s\r\n%s%s\r\nbody\r\n", date, mid);
	check_assembly(SMTP_DATA_DOT, "Subject: s\r\n\r\nbody\r\n.\r\n", want);
	check_assembly(SMTP_DATA_RAW, "Subject: s\r\n\r\nbody\r\n", want);
	/* only what is missing */
	snprintf(want, sizeof(want), "Date: x\r\n%s\r\nb\r\n", mid);
	check_assembly(SMTP_DATA_RAW, "Date: x\r\n\r\nb\r\n", want);
	check_assembly(SMTP_DATA_RAW, "Date: x\r\nMessage-ID: y\r\n\r\n",
	               "Date: x\r\nMessage-ID: y\r\n\r\n");
	/* an empty line first: the headers go before it */
	snprintf(want, sizeof(want), "%s%s\r\nbody\r\n", date, mid);
	check_assembly(SMTP_DATA_DOT, "\r\nbody\r\n.\r\n", want);
	/* no empty line: at the end, after a CRLF that ends the last line */
	snprintf(want, sizeof(want), "Subject: s\r\n%s%s", date, mid);
	check_assembly(SMTP_DATA_DOT, "Subject: s\r\n.\r\n", want);
	snprintf(want, sizeof(want), "Subject: s\r\n%s%s", date, mid);
	check_assembly(SMTP_DATA_RAW, "Subject: s", want);
	snprintf(want, sizeof(want), "%s%s", date, mid);
	check_assembly(SMTP_DATA_RAW, "", want);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_dot_simple),
	    cmocka_unit_test(test_dot_pipelined_rest),
	    cmocka_unit_test(test_dot_empty_message),
	    cmocka_unit_test(test_dot_unstuffing),
	    cmocka_unit_test(test_dot_smuggling),
	    cmocka_unit_test(test_dot_bare_passthrough),
	    cmocka_unit_test(test_dot_nul_and_8bit),
	    cmocka_unit_test(test_raw_passthrough),
	    cmocka_unit_test(test_raw_bad_eol),
	    cmocka_unit_test(test_headers_detect),
	    cmocka_unit_test(test_headers_dot_mode),
	    cmocka_unit_test(test_received_count),
	    cmocka_unit_test(test_message_id_value),
	    cmocka_unit_test(test_subject_value),
	    cmocka_unit_test(test_headers_end_insert),
	    cmocka_unit_test(test_at_line_start),
	    cmocka_unit_test(test_random_against_reference),
	    cmocka_unit_test(test_random_roundtrip),
	    cmocka_unit_test(test_headers_split_cr),
	    cmocka_unit_test(test_missing_headers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
