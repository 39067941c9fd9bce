/*
 * Unit tests for the bounce and complaint readers (PURE): dsn_parse
 * (fields, delivery-status bodies, statuses), deliv_mime (headers, types,
 * parameters, multipart walking, transfer decodings), deliv_btext (the
 * text heuristics) and deliv_report (the three readers together), on the
 * corpus of typical bounces in tests/unit/bounces/, each with LF and with
 * CRLF line ends.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "deliv/deliv_btext.h"
#include "deliv/deliv_mime.h"
#include "deliv/deliv_report.h"
#include "dsn/dsn_parse.h"
#include "util/util.h"

#define CORPUS "tests/unit/bounces/"

static char *slurp(const char *name, size_t *n)
{
	char path[256];
	FILE *f;
	struct buf b;
	char chunk[4096];
	size_t got;

	snprintf(path, sizeof(path), CORPUS "%s", name);
	f = fopen(path, "rb");
	assert_non_null(f);
	buf_init(&b);
	while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_append(&b, chunk, got);
	fclose(f);
	*n = b.len;
	return b.data;
}

/* The same text with CRLF line ends. */
static char *crlf(const char *p, size_t n, size_t *out_n)
{
	struct buf b;

	buf_init(&b);
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\n')
			buf_append(&b, "\r", 1);
		buf_append(&b, &p[i], 1);
	}
	*out_n = b.len;
	return b.data;
}

/* ---------- dsn_parse ---------- */

static void test_fields(void **state)
{
	const char *h = "Subject: a\r\n  folded\tline\r\nX-Empty:\r\nnot a field\r\nTo: b\r\n";
	struct dsn_field f;
	size_t pos = 0;
	char v[64];

	(void)state;
	assert_int_equal(dsn_field_next(h, strlen(h), &pos, &f), 1);
	assert_true(dsn_field_is(&f, "subject"));
	dsn_field_value(&f, v, sizeof(v));
	assert_string_equal(v, "a folded line");
	assert_int_equal(dsn_field_next(h, strlen(h), &pos, &f), 1);
	dsn_field_value(&f, v, sizeof(v));
	assert_string_equal(v, "");
	assert_int_equal(dsn_field_next(h, strlen(h), &pos, &f), 0); /* not a field */
	dsn_field_value(&f, v, 4);                                   /* cut to cap */
	assert_int_equal(strlen(v), 0);
	/* the end of a block: an empty line, stepped over */
	pos = 0;
	assert_int_equal(dsn_field_next("A: 1\n\nB: 2\n", 11, &pos, &f), 1);
	assert_int_equal(dsn_field_next("A: 1\n\nB: 2\n", 11, &pos, &f), 0);
	assert_int_equal(pos, 6);
	/* a name needs a colon; blanks before it are allowed */
	pos = 0;
	assert_int_equal(dsn_field_next("Name : v", 8, &pos, &f), 1);
	pos = 0;
	assert_int_equal(dsn_field_next(": v", 3, &pos, &f), 0);
}

static void test_typed_and_status(void **state)
{
	char v[64];

	(void)state;
	dsn_typed_value("rfc822; <a@b.example> ", v, sizeof(v));
	assert_string_equal(v, "a@b.example");
	dsn_typed_value("plain@b.example", v, sizeof(v));
	assert_string_equal(v, "plain@b.example");
	assert_int_equal(dsn_status_len("5.1.10 x"), 6);
	assert_int_equal(dsn_status_len("5.1"), 0);
	assert_int_equal(dsn_status_len("3.1.1"), 0);
	assert_int_equal(dsn_status_len("5.1234.1"), 0);
	assert_true(dsn_status_of_reply("550 5.1.1 no", v));
	assert_string_equal(v, "5.1.1");
	assert_true(dsn_status_of_reply("550 4.1.1 mismatch", v));
	assert_string_equal(v, "5.0.0");
	assert_false(dsn_status_of_reply("hello", v));
	assert_false(dsn_status_of_reply("354 go ahead", v)); /* no outcome */
	assert_int_equal(dsn_reply_class("421-x"), '4');
	assert_int_equal(dsn_reply_class("4210"), 0);
}

static void test_parse_status(void **state)
{
	const char *b = "Reporting-MTA: dns; x\n\n"
	                "Final-Recipient: rfc822; a@x.example\nAction: Failed\n"
	                "Status: 5.1.1 (no)\nDiagnostic-Code: smtp; 550 no\n\n"
	                "junk line\nOriginal-Recipient: rfc822;b@x.example\nStatus: 9.9\n\n"
	                "Action: failed\n\n"; /* no recipient: not counted */
	struct dsn_parsed_rcpt r[1];

	(void)state;
	assert_int_equal(dsn_parse_status(b, strlen(b), r, 1), 2); /* 2 seen, 1 kept */
	assert_string_equal(r[0].final_rcpt, "a@x.example");
	assert_string_equal(r[0].action, "failed");
	assert_string_equal(r[0].status, "5.1.1");
	assert_string_equal(r[0].diag, "550 no");
	assert_int_equal(dsn_parse_status("", 0, r, 1), 0);
}

/* ---------- deliv_mime ---------- */

static void test_mime_basics(void **state)
{
	const char *m = "Content-Type: Multipart/Mixed; charset=x;\n boundary=\"a \\\"b\"\n"
	                "Content-Transfer-Encoding: base64\n\naGVs\nbG8=\n";
	struct deliv_mime e;
	char v[64];
	struct buf b;

	(void)state;
	deliv_mime_split(m, strlen(m), &e);
	deliv_mime_type(&e, v, sizeof(v));
	assert_string_equal(v, "multipart/mixed");
	assert_true(deliv_mime_param(&e, "boundary", v, sizeof(v)));
	assert_string_equal(v, "a \"b");
	assert_true(deliv_mime_param(&e, "CHARSET", v, sizeof(v)));
	assert_string_equal(v, "x");
	assert_false(deliv_mime_param(&e, "name", v, sizeof(v)));
	buf_init(&b);
	deliv_mime_decode(&e, &b, 100);
	assert_string_equal(b.data, "hello");
	buf_free(&b);
	/* no Content-Type: text/plain (RFC 2045 5.2); no empty line: all header */
	deliv_mime_split("Subject: x", 10, &e);
	assert_int_equal(e.body_len, 0);
	deliv_mime_type(&e, v, sizeof(v));
	assert_string_equal(v, "text/plain");
}

static void test_mime_qp_and_bound(void **state)
{
	const char *m = "Content-Transfer-Encoding: quoted-printable\n\n"
	                "a=3Db soft=\nbreak =ZZ end=";
	struct deliv_mime e;
	struct buf b;

	(void)state;
	deliv_mime_split(m, strlen(m), &e);
	buf_init(&b);
	deliv_mime_decode(&e, &b, 1000);
	assert_string_equal(b.data, "a=b softbreak =ZZ end=");
	buf_reset(&b);
	deliv_mime_decode(&e, &b, 3); /* bounded */
	assert_int_equal(b.len, 3);
	buf_free(&b);
}

/* A multipart nested deeper than DELIV_MIME_DEPTH_MAX is not entered. */
static void test_mime_depth(void **state)
{
	static const char *const want[] = {"text/x-deep", NULL};
	struct buf m;
	struct deliv_mime e, found;
	int levels = DELIV_MIME_DEPTH_MAX + 1;

	(void)state;
	buf_init(&m);
	for (int i = 0; i < levels; i++)
		buf_printf(&m, "Content-Type: multipart/mixed; boundary=b%d\n\n--b%d\n", i, i);
	buf_printf(&m, "Content-Type: text/x-deep\n\nhi\n");
	deliv_mime_split(m.data, m.len, &e);
	assert_false(deliv_mime_find(&e, want, &found));
	buf_free(&m);
	buf_init(&m);
	for (int i = 0; i < levels - 1; i++)
		buf_printf(&m, "Content-Type: multipart/mixed; boundary=b%d\n\n--b%d\n", i, i);
	buf_printf(&m, "Content-Type: text/x-deep\n\nhi\n");
	deliv_mime_split(m.data, m.len, &e);
	assert_true(deliv_mime_find(&e, want, &found));
	buf_free(&m);
}

/* ---------- the corpus ---------- */

struct want {
	const char *addr;
	enum deliv_report_what what;
	const char *status;
};

struct sample {
	const char *file;
	enum deliv_report_kind kind;
	const char *fbtype;
	struct want rcpts[3];
	size_t n;
};

#define F DELIV_RCPT_FAILED
#define T DELIV_RCPT_TEMPORARY
#define C DELIV_RCPT_COMPLAINED

static const struct sample corpus[] = {
    {"qmail.txt", DELIV_REPORT_TEXT, NULL, {{"nobody@example.net", F, "5.1.1"}}, 1},
    {"exim.txt", DELIV_REPORT_TEXT, NULL, {{"ghost@example.org", F, "5.1.1"}}, 1},
    {"postfix_text.txt", DELIV_REPORT_TEXT, NULL, {{"Ann.Lee@Example.ORG", F, "5.1.1"}}, 1},
    {"sendmail.txt", DELIV_REPORT_TEXT, NULL, {{"bob@example.net", F, "5.1.1"}}, 1},
    {"exchange.txt", DELIV_REPORT_TEXT, NULL, {{"carol@contoso.example", F, "5.1.10"}}, 1},
    {"yahoo_old.txt", DELIV_REPORT_TEXT, NULL, {{"dan@yahoo.example", F, "5.1.1"}}, 1},
    {"mailbox_full.txt", DELIV_REPORT_TEXT, NULL, {{"erin@example.net", F, "5.2.2"}}, 1},
    {"delay.txt", DELIV_REPORT_TEXT, NULL, {{"frank@example.net", T, "4.3.0"}}, 1},
    {"autoreply.txt", DELIV_REPORT_NONE, NULL, {{NULL, F, NULL}}, 0},
    {"phrase_only.txt", DELIV_REPORT_TEXT, NULL, {{"heidi@small.example", F, "5.1.1"}}, 1},
    {"copy_marker.txt", DELIV_REPORT_NONE, NULL, {{NULL, F, NULL}}, 0},
    {"dsn_multipart.eml",
     DELIV_REPORT_DSN,
     NULL,
     {{"ivan@example.net", F, "5.1.1"}, {"judy@example.net", T, "4.4.1"}},
     2},
    {"dsn_diag_only.eml", DELIV_REPORT_DSN, NULL, {{"kevin@example.org", F, "5.2.1"}}, 1},
    {"forwarded_dsn.eml", DELIV_REPORT_DSN, NULL, {{"olaf@example.jp", F, "5.1.2"}}, 1},
    {"arf.eml", DELIV_REPORT_ARF, "abuse", {{"lee@hotmail.example", C, ""}}, 1},
    {"arf_redacted.eml",
     DELIV_REPORT_ARF,
     "fraud",
     {{"mallory@isp.example", C, ""}, {"other@isp.example", C, ""}},
     2},
    {"arf_notspam.eml", DELIV_REPORT_NONE, NULL, {{NULL, F, NULL}}, 0},
};

static void check_sample(const struct sample *s, const char *p, size_t n)
{
	struct deliv_report *r = xcalloc(1, sizeof(*r));

	deliv_report_parse(p, n, r);
	if (r->kind != s->kind || r->n != s->n)
		fail_msg("%s: kind %s with %zu recipients, want %s with %zu (first: %s)", s->file,
		         deliv_report_kind_name(r->kind), r->n, deliv_report_kind_name(s->kind),
		         s->n, r->n ? r->rcpts[0].addr : "-");
	if (s->fbtype)
		assert_string_equal(r->feedback_type, s->fbtype);
	for (size_t i = 0; i < s->n; i++) {
		assert_string_equal(r->rcpts[i].addr, s->rcpts[i].addr);
		assert_int_equal(r->rcpts[i].what, s->rcpts[i].what);
		assert_string_equal(r->rcpts[i].status, s->rcpts[i].status);
		if (r->rcpts[i].what != C)
			assert_true(r->rcpts[i].diag[0] != '\0');
	}
	free(r);
}

static void test_corpus(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(corpus); i++) {
		size_t n, n2;
		char *p = slurp(corpus[i].file, &n);
		char *q = crlf(p, n, &n2);
		check_sample(&corpus[i], p, n);
		check_sample(&corpus[i], q, n2);
		free(p);
		free(q);
	}
}

/* The diagnostic of a text hit is the line its status came from. */
static void test_btext_diag(void **state)
{
	const char *t = "<x@a.example>:\nSorry, no mailbox here by that name. (#5.1.1)\n";
	struct deliv_btext_hit h[2];

	(void)state;
	assert_int_equal(deliv_btext_scan(t, strlen(t), h, 2), 1);
	assert_string_equal(h[0].diag, "Sorry, no mailbox here by that name. (#5.1.1)");
	assert_int_equal(h[0].strength, 3);
}

/* An address's window is DELIV_BTEXT_WINDOW lines; a status beyond it
 * belongs to nobody. A second address takes over the window. */
static void test_btext_window(void **state)
{
	const char *far = "a@x.example\n1\n2\n3\n550 5.1.1 gone\n";
	const char *near = "a@x.example\n1\n2\n550 5.1.1 gone\n";
	const char *two = "a@x.example\nb@x.example\n550 5.1.1 gone\n";
	struct deliv_btext_hit h[4];

	(void)state;
	assert_int_equal(deliv_btext_scan(far, strlen(far), h, 4), 0);
	assert_int_equal(deliv_btext_scan(near, strlen(near), h, 4), 1);
	assert_int_equal(deliv_btext_scan(two, strlen(two), h, 4), 1);
	assert_string_equal(h[0].addr, "b@x.example");
	/* a stronger status later in the window wins; the weaker one first */
	const char *up = "c@x.example does not exist\n550 5.1.10 gone\n";
	assert_int_equal(deliv_btext_scan(up, strlen(up), h, 4), 1);
	assert_string_equal(h[0].status, "5.1.10");
	/* at most max hits */
	const char *many = "a@x.example 550 5.1.1\nb@x.example 550 5.1.1\n";
	assert_int_equal(deliv_btext_scan(many, strlen(many), h, 1), 1);
}

/* Numbers that are not statuses: IP addresses, versions, phone numbers. */
static void test_btext_not_statuses(void **state)
{
	const char *t = "a@x.example host [10.5.1.1] port 5500 at 192.168.5.1\n";
	const char *u = "b@x.example 5.1.1.1 and 550.1\n";
	struct deliv_btext_hit h[2];

	(void)state;
	assert_int_equal(deliv_btext_scan(t, strlen(t), h, 2), 0);
	assert_int_equal(deliv_btext_scan(u, strlen(u), h, 2), 0);
}

static int collect(void *arg, const char *addr)
{
	struct buf *b = arg;

	buf_printf(b, "[%s]", addr);
	return 0;
}

static void test_addr_scan(void **state)
{
	const char *v = "\"Ann\" <ann@a.example>, bob@b.example. 'c@c.example' no@ @x.y d@nodot "
	                "e@f.example-";
	struct buf b;

	(void)state;
	buf_init(&b);
	deliv_addr_scan(v, strlen(v), collect, &b);
	assert_string_equal(b.data, "[ann@a.example][bob@b.example][c@c.example][e@f.example]");
	buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fields),
	    cmocka_unit_test(test_typed_and_status),
	    cmocka_unit_test(test_parse_status),
	    cmocka_unit_test(test_mime_basics),
	    cmocka_unit_test(test_mime_qp_and_bound),
	    cmocka_unit_test(test_mime_depth),
	    cmocka_unit_test(test_corpus),
	    cmocka_unit_test(test_btext_diag),
	    cmocka_unit_test(test_btext_window),
	    cmocka_unit_test(test_btext_not_statuses),
	    cmocka_unit_test(test_addr_scan),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
