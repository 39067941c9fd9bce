/*
 * Unit tests for smtpc/smtpc_reply (PURE): the incremental reply parser
 * (any split of the input, multi-line replies, enhanced status codes,
 * malformed input, the bounds) and the EHLO keyword parser. No sockets:
 * bytes in, replies out, as the session and the fuzzer use it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "smtpc/smtpc_reply.h"
#include "util/util.h"

/* ---------- helpers ---------- */

/* What came out of one stream: the replies in order, then how it ended. */
struct run {
	struct smtpc_reply r[8];
	size_t n;
	enum smtpc_rstatus last; /* NEED at the end of input, or ERROR */
	const char *error;
};

static void run_free(struct run *run)
{
	size_t i;

	for (i = 0; i < run->n; i++)
		smtpc_reply_clear(&run->r[i]);
	run->n = 0;
}

/* Feed s[0..len) in pieces of at most chunk bytes (0: all at once). */
static void run_feed(struct run *run, const char *s, size_t len, size_t chunk)
{
	struct smtpc_rparser p;
	size_t off = 0;

	memset(run, 0, sizeof(*run));
	smtpc_rparser_init(&p);
	run->last = SMTPC_R_NEED;
	while (off < len && run->last != SMTPC_R_ERROR) {
		size_t piece = chunk && len - off > chunk ? chunk : len - off;
		size_t used = 0;
		/* a piece may hold several replies: call until it is used up */
		while (used < piece) {
			struct smtpc_reply r;
			enum smtpc_rstatus st;
			size_t n = smtpc_rparser_feed(&p, s + off + used, piece - used, &r, &st);
			assert_true(n <= piece - used);
			used += n;
			if (st == SMTPC_R_REPLY) {
				assert_true(run->n < ARRAY_LEN(run->r));
				run->r[run->n++] = r;
				continue;
			}
			run->last = st;
			if (st == SMTPC_R_ERROR)
				break;
			assert_int_equal(used, piece); /* NEED takes everything */
		}
		off += piece;
	}
	run->error = smtpc_rparser_error(&p);
	smtpc_rparser_free(&p);
}

static void run_str(struct run *run, const char *s)
{
	run_feed(run, s, strlen(s), 0);
}

/* One reply expected from s, ending exactly at the end of s. */
static void one(const char *s, int code, const char *enh, const char *text, size_t lines)
{
	struct run run;

	run_str(&run, s);
	assert_int_equal(run.n, 1);
	assert_int_equal(run.last, SMTPC_R_NEED);
	assert_int_equal(run.r[0].code, code);
	assert_string_equal(run.r[0].enhanced, enh);
	assert_string_equal(run.r[0].text, text);
	assert_int_equal(run.r[0].n_lines, lines);
	run_free(&run);
}

/* s must be a protocol error. */
static void bad(const char *s)
{
	struct run run;

	run_str(&run, s);
	assert_int_equal(run.last, SMTPC_R_ERROR);
	assert_non_null(run.error);
	run_free(&run);
}

static void runs_equal(const struct run *a, const struct run *b)
{
	size_t i;

	assert_int_equal(a->n, b->n);
	assert_int_equal(a->last, b->last);
	for (i = 0; i < a->n; i++) {
		assert_int_equal(a->r[i].code, b->r[i].code);
		assert_string_equal(a->r[i].enhanced, b->r[i].enhanced);
		assert_string_equal(a->r[i].text, b->r[i].text);
		assert_int_equal(a->r[i].n_lines, b->r[i].n_lines);
	}
}

/* ---------- single and multi-line replies ---------- */

static void test_single_line(void **state)
{
	(void)state;
	one("220 mx.example.com ESMTP\r\n", 220, "", "mx.example.com ESMTP", 1);
	one("250 ok\n", 250, "", "ok", 1); /* bare LF, lenient */
	one("250\r\n", 250, "", "", 1);    /* no text at all */
	one("250 \r\n", 250, "", "", 1);
	one("354  two spaces kept\r\n", 354, "", " two spaces kept", 1);
	one("599 top of the range\r\n", 599, "", "top of the range", 1);
	one("200 bottom\r\n", 200, "", "bottom", 1);
}

static void test_multi_line(void **state)
{
	(void)state;
	one("250-mx.example.com hello\r\n250-PIPELINING\r\n250 8BITMIME\r\n", 250, "",
	    "mx.example.com hello\nPIPELINING\n8BITMIME", 3);
	one("250-\r\n250-\r\n250\r\n", 250, "", "\n\n", 3); /* empty lines keep their place */
	one("550-5.1.1 first\r\n550-5.1.1 second\r\n550 5.1.1 third\r\n", 550, "5.1.1",
	    "first\nsecond\nthird", 3);
	/* mixed line endings */
	one("250-a\n250-b\r\n250 c\n", 250, "", "a\nb\nc", 3);
}

static void test_not_yet(void **state)
{
	struct smtpc_rparser p;
	struct smtpc_reply r;
	enum smtpc_rstatus st;

	(void)state;
	smtpc_rparser_init(&p);
	assert_true(smtpc_rparser_idle(&p));
	assert_int_equal(smtpc_rparser_feed(&p, "", 0, &r, &st), 0);
	assert_int_equal(st, SMTPC_R_NEED);
	assert_int_equal(smtpc_rparser_feed(&p, "250-a\r\n", 7, &r, &st), 7);
	assert_int_equal(st, SMTPC_R_NEED);
	assert_false(smtpc_rparser_idle(&p));
	assert_int_equal(smtpc_rparser_feed(&p, "250 b\r", 6, &r, &st), 6);
	assert_int_equal(st, SMTPC_R_NEED);
	/* the LF of a split CRLF completes it */
	assert_int_equal(smtpc_rparser_feed(&p, "\n", 1, &r, &st), 1);
	assert_int_equal(st, SMTPC_R_REPLY);
	assert_string_equal(r.text, "a\nb");
	assert_true(smtpc_rparser_idle(&p));
	assert_null(smtpc_rparser_error(&p));
	smtpc_reply_clear(&r);
	smtpc_reply_clear(&r); /* twice is harmless */
	smtpc_rparser_free(&p);
}

static void test_pipelined(void **state)
{
	const char *s = "250 2.1.0 sender ok\r\n250 2.1.5 rcpt ok\r\n550 5.1.1 no\r\n354 go";
	struct smtpc_rparser p;
	struct smtpc_reply r;
	enum smtpc_rstatus st;
	size_t off = 0, n;

	(void)state;
	smtpc_rparser_init(&p);
	n = smtpc_rparser_feed(&p, s, strlen(s), &r, &st);
	assert_int_equal(st, SMTPC_R_REPLY);
	assert_int_equal(n, strlen("250 2.1.0 sender ok\r\n"));
	assert_string_equal(r.enhanced, "2.1.0");
	smtpc_reply_clear(&r);
	off += n;
	n = smtpc_rparser_feed(&p, s + off, strlen(s) - off, &r, &st);
	assert_int_equal(st, SMTPC_R_REPLY);
	assert_string_equal(r.text, "rcpt ok");
	smtpc_reply_clear(&r);
	off += n;
	n = smtpc_rparser_feed(&p, s + off, strlen(s) - off, &r, &st);
	assert_int_equal(st, SMTPC_R_REPLY);
	assert_int_equal(r.code, 550);
	smtpc_reply_clear(&r);
	off += n;
	/* the partial "354 go" stays inside, out untouched */
	memset(&r, 0, sizeof(r));
	n = smtpc_rparser_feed(&p, s + off, strlen(s) - off, &r, &st);
	assert_int_equal(st, SMTPC_R_NEED);
	assert_int_equal(n, strlen("354 go"));
	assert_null(r.text);
	assert_false(smtpc_rparser_idle(&p));
	smtpc_rparser_free(&p);
}

/* Every chunk size, from byte by byte up, gives the same replies. */
static void test_every_split(void **state)
{
	static const char *const streams[] = {
	    ("220-mx.example.com ESMTP\r\n220 second line\r\n250-mx\r\n250-SIZE 100\r\n"
	     "250 AUTH PLAIN\r\n250 2.1.0 ok\r\n452 4.5.3 too many\r\n354 go ahead\n"),
	    "250 ok\r\n250 ok\r\n25",                    /* unfinished at the end */
	    "250 ok\r\n250-a\r\n251 b\r\n250 never\r\n", /* error after one reply */
	    "250 ok\r\r\n550\r\n",
	};
	struct run whole, piece;
	size_t i, chunk;

	(void)state;
	for (i = 0; i < ARRAY_LEN(streams); i++) {
		size_t len = strlen(streams[i]);
		run_feed(&whole, streams[i], len, 0);
		for (chunk = 1; chunk <= len; chunk++) {
			run_feed(&piece, streams[i], len, chunk);
			runs_equal(&whole, &piece);
			run_free(&piece);
		}
		run_free(&whole);
	}
}

/* Split in two at every offset. */
static void test_every_two_part_split(void **state)
{
	const char *s = "250-mx.example.com\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n";
	size_t len = strlen(s), cut;
	struct run whole;

	(void)state;
	run_str(&whole, s);
	for (cut = 0; cut <= len; cut++) {
		struct smtpc_rparser p;
		struct smtpc_reply r;
		enum smtpc_rstatus st;
		size_t n;

		smtpc_rparser_init(&p);
		n = smtpc_rparser_feed(&p, s, cut, &r, &st);
		assert_int_equal(n, cut);
		assert_int_equal(st, cut == len ? SMTPC_R_REPLY : SMTPC_R_NEED);
		if (cut < len) {
			n = smtpc_rparser_feed(&p, s + cut, len - cut, &r, &st);
			assert_int_equal(n, len - cut);
			assert_int_equal(st, SMTPC_R_REPLY);
		}
		assert_string_equal(r.text, whole.r[0].text);
		smtpc_reply_clear(&r);
		smtpc_rparser_free(&p);
	}
	run_free(&whole);
}

/* ---------- enhanced status codes ---------- */

static void test_enhanced(void **state)
{
	(void)state;
	one("550 5.1.1 <x@example.com>: no such user\r\n", 550, "5.1.1",
	    "<x@example.com>: no such user", 1);
	one("550 5.1.1\r\n", 550, "5.1.1", "", 1);
	one("550 5.1.10 null MX\r\n", 550, "5.1.10", "null MX", 1);
	one("554 5.123.123 widest\r\n", 554, "5.123.123", "widest", 1);
	one("250 2.0.0   spaces after the code go\r\n", 250, "2.0.0", "spaces after the code go",
	    1);
	/* the class must match the reply code's first digit */
	one("250 5.1.1 mismatch\r\n", 250, "", "5.1.1 mismatch", 1);
	one("450 5.7.1 mismatch\r\n", 450, "", "5.7.1 mismatch", 1);
	/* not a code at all: kept as text */
	one("550 5.1 short\r\n", 550, "", "5.1 short", 1);
	one("550 5.1.1x glued\r\n", 550, "", "5.1.1x glued", 1);
	one("550 5.1234.1 wide\r\n", 550, "", "5.1234.1 wide", 1);
	one("550 5.1.1234 wide\r\n", 550, "", "5.1.1234 wide", 1);
	one("550 5..1 empty\r\n", 550, "", "5..1 empty", 1);
	one("550 5.a.1 letter\r\n", 550, "", "5.a.1 letter", 1);
	one("550 .5.1.1 dot\r\n", 550, "", ".5.1.1 dot", 1);
	/* the first line names the code; later lines lose theirs too */
	one("451-4.3.0 one\r\n451 4.3.0 two\r\n", 451, "4.3.0", "one\ntwo", 2);
	one("451-text first\r\n451 4.3.0 two\r\n", 451, "", "text first\ntwo", 2);
	one("451-4.3.0 one\r\n451-4.7.1 other\r\n451 two\r\n", 451, "4.3.0", "one\nother\ntwo", 3);
}

/* ---------- malformed input ---------- */

static void test_malformed(void **state)
{
	(void)state;
	bad("\r\n");
	bad("\n");
	bad("25\r\n");
	bad("25 ok\r\n");
	bad("2500 ok\r\n");
	bad("250x ok\r\n");
	bad("250\tok\r\n");
	bad("abc ok\r\n");
	bad(" 250 ok\r\n");
	bad("199 too low\r\n");
	bad("100 too low\r\n");
	bad("600 too high\r\n");
	bad("000 zero\r\n");
	bad("-250 ok\r\n");
	bad("2a0 ok\r\n");
	/* every line of a reply carries the same code */
	bad("250-a\r\n251 b\r\n");
	bad("250-a\r\n550 b\r\n");
	bad("250-a\r\n\r\n");
	bad("250-a\r\nPIPELINING\r\n");
}

static void test_error_sticky(void **state)
{
	struct smtpc_rparser p;
	struct smtpc_reply r;
	enum smtpc_rstatus st;

	(void)state;
	smtpc_rparser_init(&p);
	smtpc_rparser_feed(&p, "hello\r\n", 7, &r, &st);
	assert_int_equal(st, SMTPC_R_ERROR);
	assert_string_equal(smtpc_rparser_error(&p), "malformed reply line");
	assert_false(smtpc_rparser_idle(&p));
	/* a good reply after the error is not read: the stream is lost */
	assert_int_equal(smtpc_rparser_feed(&p, "250 ok\r\n", 8, &r, &st), 0);
	assert_int_equal(st, SMTPC_R_ERROR);
	smtpc_rparser_free(&p);

	smtpc_rparser_init(&p);
	smtpc_rparser_feed(&p, "250-a\r\n450 b\r\n", 14, &r, &st);
	assert_int_equal(st, SMTPC_R_ERROR);
	assert_string_equal(smtpc_rparser_error(&p),
	                    "reply code changed within a multi-line reply");
	smtpc_rparser_free(&p);
}

static void test_control_chars(void **state)
{
	struct smtpc_rparser p;
	struct smtpc_reply r;
	enum smtpc_rstatus st;
	static const char s[] = "250 a\0b\tc\rd\x7f"
	                        "e\x1b[31m\xc3\xa9\r\n";

	(void)state;
	smtpc_rparser_init(&p);
	assert_int_equal(smtpc_rparser_feed(&p, s, sizeof(s) - 1, &r, &st), sizeof(s) - 1);
	assert_int_equal(st, SMTPC_R_REPLY);
	/* NUL, CR, DEL, ESC become '?', TAB a space; UTF-8 stays */
	assert_string_equal(r.text, "a?b c?d?e?[31m\xc3\xa9");
	smtpc_reply_clear(&r);
	smtpc_rparser_free(&p);
	/* only the CR right before the LF belongs to the EOL */
	one("250 ok\r\r\n", 250, "", "ok?", 1);
}

/* ---------- bounds ---------- */

/* "250 " + n 'x' + eol, as a heap string. */
static char *long_line(const char *prefix, size_t n, const char *eol)
{
	size_t pl = strlen(prefix), el = strlen(eol);
	char *s = xmalloc(pl + n + el + 1);

	memcpy(s, prefix, pl);
	memset(s + pl, 'x', n);
	memcpy(s + pl + n, eol, el + 1);
	return s;
}

static void test_line_limit(void **state)
{
	char *s;
	struct run run;

	(void)state;
	/* exactly SMTPC_REPLY_LINE_MAX with its CRLF: fine */
	s = long_line("250 ", SMTPC_REPLY_LINE_MAX - 6, "\r\n");
	assert_int_equal(strlen(s), SMTPC_REPLY_LINE_MAX);
	run_str(&run, s);
	assert_int_equal(run.n, 1);
	assert_int_equal(strlen(run.r[0].text), SMTPC_REPLY_LINE_MAX - 6);
	run_free(&run);
	free(s);
	/* the same with a bare LF */
	s = long_line("250 ", SMTPC_REPLY_LINE_MAX - 5, "\n");
	run_str(&run, s);
	assert_int_equal(run.n, 1);
	run_free(&run);
	free(s);
	/* one octet more: error */
	s = long_line("250 ", SMTPC_REPLY_LINE_MAX - 5, "\r\n");
	run_str(&run, s);
	assert_int_equal(run.last, SMTPC_R_ERROR);
	assert_string_equal(run.error, "reply line too long");
	run_free(&run);
	free(s);
	s = long_line("250 ", SMTPC_REPLY_LINE_MAX - 4, "\n");
	run_str(&run, s);
	assert_int_equal(run.last, SMTPC_R_ERROR);
	run_free(&run);
	free(s);
}

/* An endless line fails as soon as it cannot fit, not at its end. */
static void test_line_limit_eager(void **state)
{
	struct smtpc_rparser p;
	struct smtpc_reply r;
	enum smtpc_rstatus st;
	char chunk[512];
	size_t fed = 0;

	(void)state;
	memset(chunk, 'x', sizeof(chunk));
	memcpy(chunk, "250 ", 4);
	smtpc_rparser_init(&p);
	for (;;) {
		smtpc_rparser_feed(&p, chunk, sizeof(chunk), &r, &st);
		if (st == SMTPC_R_ERROR)
			break;
		assert_int_equal(st, SMTPC_R_NEED);
		fed += sizeof(chunk);
		memset(chunk, 'x', 4);
	}
	/* 4095 octets plus the LF would fit; the 4096th octet cannot */
	assert_true(fed < SMTPC_REPLY_LINE_MAX);
	assert_true(fed + sizeof(chunk) >= SMTPC_REPLY_LINE_MAX);
	assert_true(p.line.len < SMTPC_REPLY_LINE_MAX);
	smtpc_rparser_free(&p);

	/* byte by byte: the limit is exact */
	smtpc_rparser_init(&p);
	for (fed = 0;; fed++) {
		smtpc_rparser_feed(&p, fed < 4 ? &"250 "[fed] : "x", 1, &r, &st);
		if (st == SMTPC_R_ERROR)
			break;
	}
	assert_int_equal(fed, SMTPC_REPLY_LINE_MAX - 1);
	smtpc_rparser_free(&p);
}

/* n lines of "250-x", then "250 end" (n+1 lines in all). */
static char *many_lines(size_t n)
{
	struct buf b;
	size_t i;

	buf_init(&b);
	for (i = 0; i < n; i++)
		buf_puts(&b, "250-x\r\n");
	buf_puts(&b, "250 end\r\n");
	return b.data;
}

static void test_lines_limit(void **state)
{
	char *s;
	struct run run;

	(void)state;
	s = many_lines(SMTPC_REPLY_LINES_MAX - 1);
	run_str(&run, s);
	assert_int_equal(run.n, 1);
	assert_int_equal(run.r[0].n_lines, SMTPC_REPLY_LINES_MAX);
	run_free(&run);
	free(s);
	s = many_lines(SMTPC_REPLY_LINES_MAX);
	run_str(&run, s);
	assert_int_equal(run.n, 0);
	assert_int_equal(run.last, SMTPC_R_ERROR);
	assert_string_equal(run.error, "too many lines in reply");
	run_free(&run);
	free(s);
}

/* Lines of exactly len octets (CRLF included) adding up to total. */
static char *reply_of_size(size_t total, size_t len)
{
	struct buf b;

	buf_init(&b);
	while (total > len) {
		char *l = long_line("250-", len - 6, "\r\n");
		buf_puts(&b, l);
		free(l);
		total -= len;
	}
	{
		char *l = long_line("250 ", total - 6, "\r\n");
		buf_puts(&b, l);
		free(l);
	}
	return b.data;
}

static void test_total_limit(void **state)
{
	char *s;
	struct run run;

	(void)state;
	/* 64 KiB in lines of 1,000 octets (66 lines): exactly the limit */
	s = reply_of_size(SMTPC_REPLY_TOTAL_MAX, 1000);
	assert_int_equal(strlen(s), SMTPC_REPLY_TOTAL_MAX);
	run_str(&run, s);
	assert_int_equal(run.n, 1);
	assert_int_equal(run.r[0].n_lines, 66);
	run_free(&run);
	free(s);
	s = reply_of_size(SMTPC_REPLY_TOTAL_MAX + 1, 1000);
	run_str(&run, s);
	assert_int_equal(run.last, SMTPC_R_ERROR);
	assert_string_equal(run.error, "reply too long");
	run_free(&run);
	free(s);
	/* a line over both limits is named after the one it crosses first, so
	 * the error is the same however the input is split (found by the
	 * fuzzer) */
	{
		char *head = reply_of_size(64000, 4000), *tail = long_line("250-", 5000, "\r\n");
		struct run bytewise;
		/* the last line's "250 " becomes "250-": the reply goes on */
		head[strlen(head) - 4000 + 3] = '-';
		s = xasprintf("%s%s", head, tail);
		run_str(&run, s);
		run_feed(&bytewise, s, strlen(s), 1);
		assert_string_equal(run.error, "reply too long");
		assert_string_equal(bytewise.error, "reply too long");
		run_free(&run);
		run_free(&bytewise);
		free(s);
		/* with room for the whole line, the line limit is the tighter */
		s = xasprintf("250-x\r\n%s", tail);
		run_str(&run, s);
		run_feed(&bytewise, s, strlen(s), 1);
		assert_string_equal(run.error, "reply line too long");
		assert_string_equal(bytewise.error, "reply line too long");
		run_free(&run);
		run_free(&bytewise);
		free(s);
		free(head);
		free(tail);
	}
	/* the limit is per reply: two big replies in a row are fine */
	s = reply_of_size(SMTPC_REPLY_TOTAL_MAX, 4000);
	{
		size_t n = strlen(s);
		char *two = xmalloc(2 * n + 1);
		memcpy(two, s, n);
		memcpy(two + n, s, n + 1);
		run_str(&run, two);
		assert_int_equal(run.n, 2);
		assert_int_equal(run.last, SMTPC_R_NEED);
		run_free(&run);
		free(two);
	}
	free(s);
}

/* ---------- EHLO keywords ---------- */

static void caps_of(const char *s, struct smtpc_caps *c, int want)
{
	struct run run;

	run_str(&run, s);
	assert_int_equal(run.n, 1);
	assert_int_equal(smtpc_caps_parse(&run.r[0], c), want);
	run_free(&run);
}

static void test_caps_full(void **state)
{
	struct smtpc_caps c;

	(void)state;
	caps_of("250-mx.example.com Hello [192.0.2.1]\r\n"
	        "250-PIPELINING\r\n250-SIZE 35882577\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n"
	        "250-DSN\r\n250-CHUNKING\r\n250-ENHANCEDSTATUSCODES\r\n250-REQUIRETLS\r\n"
	        "250-STARTTLS\r\n250 AUTH LOGIN PLAIN XOAUTH2\r\n",
	        &c, 0);
	assert_true(c.pipelining && c.starttls && c.size && c.eightbitmime && c.smtputf8);
	assert_true(c.dsn && c.chunking && c.enhancedstatuscodes && c.requiretls);
	assert_true(c.auth && c.auth_plain && c.auth_login);
	assert_true(c.size_max == 35882577);
}

static void test_caps_none(void **state)
{
	struct smtpc_caps c, zero;

	(void)state;
	memset(&zero, 0, sizeof(zero));
	/* one line: the name only; its words are not keywords */
	caps_of("250 mx.example.com PIPELINING STARTTLS\r\n", &c, 0);
	assert_memory_equal(&c, &zero, sizeof(c));
	caps_of("250-PIPELINING\r\n250 mx\r\n", &c, 0); /* first line skipped */
	assert_false(c.pipelining);
	/* not a positive reply */
	caps_of("550-mx\r\n550-PIPELINING\r\n550 STARTTLS\r\n", &c, -1);
	assert_memory_equal(&c, &zero, sizeof(c));
	/* words that only start like a keyword */
	caps_of("250-mx\r\n250-PIPELININGX\r\n250-STARTTLSX\r\n250-SIZEX 10\r\n250-DSNX\r\n"
	        "250-AUTHX PLAIN\r\n250-X-PIPELINING\r\n250 8BITMIMEX\r\n",
	        &c, 0);
	assert_memory_equal(&c, &zero, sizeof(c));
}

static void test_caps_case_and_space(void **state)
{
	struct smtpc_caps c;

	(void)state;
	caps_of("250-mx\r\n250-pipelining\r\n250-StartTLS\r\n250-  8bitmime\r\n"
	        "250-smtputf8 \r\n250 auth plain\r\n",
	        &c, 0);
	assert_true(c.pipelining && c.starttls && c.eightbitmime && c.smtputf8);
	assert_true(c.auth && c.auth_plain);
	assert_false(c.auth_login);
}

static void test_caps_auth(void **state)
{
	struct smtpc_caps c;

	(void)state;
	caps_of("250-mx\r\n250 AUTH=LOGIN\r\n", &c, 0); /* legacy form */
	assert_true(c.auth && c.auth_login);
	assert_false(c.auth_plain);
	caps_of("250-mx\r\n250-AUTH CRAM-MD5\r\n250 AUTH=PLAIN LOGIN\r\n", &c, 0);
	assert_true(c.auth && c.auth_plain && c.auth_login);
	caps_of("250-mx\r\n250 AUTH   CRAM-MD5  PLAINX  login  \r\n", &c, 0);
	assert_true(c.auth && c.auth_login);
	assert_false(c.auth_plain);
	caps_of("250-mx\r\n250 AUTH\r\n", &c, 0);
	assert_true(c.auth);
	assert_false(c.auth_plain || c.auth_login);
}

static void test_caps_size(void **state)
{
	struct smtpc_caps c;

	(void)state;
	caps_of("250-mx\r\n250 SIZE\r\n", &c, 0);
	assert_true(c.size);
	assert_true(c.size_max == 0);
	caps_of("250-mx\r\n250 SIZE 0\r\n", &c, 0); /* RFC 1870: no fixed limit */
	assert_true(c.size && c.size_max == 0);
	caps_of("250-mx\r\n250 size   1000  \r\n", &c, 0);
	assert_true(c.size && c.size_max == 1000);
	caps_of("250-mx\r\n250 SIZE 18446744073709551615\r\n", &c, 0);
	assert_true(c.size_max == UINT64_MAX);
	caps_of("250-mx\r\n250 SIZE 18446744073709551616\r\n", &c, 0); /* overflow */
	assert_true(c.size && c.size_max == 0);
	caps_of("250-mx\r\n250 SIZE -5\r\n", &c, 0);
	assert_true(c.size && c.size_max == 0);
	caps_of("250-mx\r\n250 SIZE 10MB\r\n", &c, 0);
	assert_true(c.size && c.size_max == 0);
	caps_of("250-mx\r\n250 SIZE 123456789012345678901234567890\r\n", &c, 0);
	assert_true(c.size && c.size_max == 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_single_line),
	    cmocka_unit_test(test_multi_line),
	    cmocka_unit_test(test_not_yet),
	    cmocka_unit_test(test_pipelined),
	    cmocka_unit_test(test_every_split),
	    cmocka_unit_test(test_every_two_part_split),
	    cmocka_unit_test(test_enhanced),
	    cmocka_unit_test(test_malformed),
	    cmocka_unit_test(test_error_sticky),
	    cmocka_unit_test(test_control_chars),
	    cmocka_unit_test(test_line_limit),
	    cmocka_unit_test(test_line_limit_eager),
	    cmocka_unit_test(test_lines_limit),
	    cmocka_unit_test(test_total_limit),
	    cmocka_unit_test(test_caps_full),
	    cmocka_unit_test(test_caps_none),
	    cmocka_unit_test(test_caps_case_and_space),
	    cmocka_unit_test(test_caps_auth),
	    cmocka_unit_test(test_caps_size),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
