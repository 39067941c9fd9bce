/*
 * Unit tests for smtpd/smtp_parse (PURE): the command-line scanner, the
 * verb table, MAIL/RCPT paths and ESMTP parameters, Mailbox syntax, BDAT
 * arguments and SASL PLAIN/LOGIN responses. No sockets: bytes in, results
 * out, as the session and the fuzzer use it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "smtpd/smtp_parse.h"
#include "spool/spool.h"
#include "util/util.h"

/* The PURE parser repeats spool.h's NOTIFY bits; they must agree. */
_Static_assert(SMTP_NOTIFY_NEVER == DSN_NOTIFY_NEVER, "NEVER");
_Static_assert(SMTP_NOTIFY_SUCCESS == DSN_NOTIFY_SUCCESS, "SUCCESS");
_Static_assert(SMTP_NOTIFY_FAILURE == DSN_NOTIFY_FAILURE, "FAILURE");
_Static_assert(SMTP_NOTIFY_DELAY == DSN_NOTIFY_DELAY, "DELAY");

/* ---------- smtp_scan_line ---------- */

static enum smtp_scan scan(const char *s, int *ov, size_t *ll, size_t *used)
{
	return smtp_scan_line(s, strlen(s), SMTP_LINE_MAX, ov, ll, used);
}

static void test_scan_basic(void **state)
{
	size_t ll, used;
	int ov = 0;

	(void)state;
	assert_int_equal(scan("NOOP\r\nQUIT\r\n", &ov, &ll, &used), SMTP_SCAN_LINE);
	assert_int_equal(ll, 4);
	assert_int_equal(used, 6);
	/* bare LF ends a command line too */
	assert_int_equal(scan("NOOP\nQUIT", &ov, &ll, &used), SMTP_SCAN_LINE);
	assert_int_equal(ll, 4);
	assert_int_equal(used, 5);
	assert_int_equal(scan("\r\n", &ov, &ll, &used), SMTP_SCAN_LINE);
	assert_int_equal(ll, 0);
	assert_int_equal(used, 2);
	assert_int_equal(scan("\n", &ov, &ll, &used), SMTP_SCAN_LINE);
	assert_int_equal(ll, 0);
	assert_int_equal(used, 1);
	/* a bare CR is line content (parse_cmd refuses it), not an end */
	assert_int_equal(scan("NO\rOP\r\n", &ov, &ll, &used), SMTP_SCAN_LINE);
	assert_int_equal(ll, 5);
	assert_int_equal(scan("NOOP\r", &ov, &ll, &used), SMTP_SCAN_NEED);
	assert_int_equal(used, 0);
	assert_int_equal(scan("NOOP", &ov, &ll, &used), SMTP_SCAN_NEED);
	assert_int_equal(scan("", &ov, &ll, &used), SMTP_SCAN_NEED);
	assert_int_equal(used, 0);
	assert_int_equal(ov, 0);
}

/* A line of `content` bytes of 'x' then the given end of line. */
static char *make_line(size_t content, const char *eol, const char *after)
{
	char *s = xmalloc(content + strlen(eol) + strlen(after) + 1);

	memset(s, 'x', content);
	strcpy(s + content, eol);
	strcat(s, after);
	return s;
}

static void test_scan_limit(void **state)
{
	size_t ll, used;
	int ov = 0;
	char *s;

	(void)state;
	/* 510 + CRLF = 512: the longest legal line */
	s = make_line(SMTP_LINE_MAX - 2, "\r\n", "");
	assert_int_equal(scan(s, &ov, &ll, &used), SMTP_SCAN_LINE);
	assert_int_equal(ll, SMTP_LINE_MAX - 2);
	free(s);
	s = make_line(SMTP_LINE_MAX - 2, "\n", "");
	assert_int_equal(scan(s, &ov, &ll, &used), SMTP_SCAN_LINE);
	free(s);
	/* 511 + LF: 512 octets, but 511 of content is one too many */
	s = make_line(SMTP_LINE_MAX - 1, "\n", "NOOP\r\n");
	assert_int_equal(scan(s, &ov, &ll, &used), SMTP_SCAN_TOO_LONG);
	assert_int_equal(used, SMTP_LINE_MAX);
	assert_int_equal(ov, 0);
	free(s);
	/* 511 + CRLF with the end present: dropped whole, no skip state */
	s = make_line(SMTP_LINE_MAX - 1, "\r\n", "NOOP\r\n");
	assert_int_equal(scan(s, &ov, &ll, &used), SMTP_SCAN_TOO_LONG);
	assert_int_equal(used, SMTP_LINE_MAX + 1);
	assert_int_equal(ov, 0);
	assert_int_equal(scan(s + used, &ov, &ll, &used), SMTP_SCAN_LINE);
	assert_int_equal(ll, 4);
	free(s);
	/* 511 bytes and no end yet: not yet over 512 octets, so wait */
	s = make_line(SMTP_LINE_MAX - 1, "", "");
	assert_int_equal(scan(s, &ov, &ll, &used), SMTP_SCAN_NEED);
	free(s);
	/* 510 + CR, LF not yet here */
	s = make_line(SMTP_LINE_MAX - 2, "\r", "");
	assert_int_equal(scan(s, &ov, &ll, &used), SMTP_SCAN_NEED);
	free(s);
	/* 512 bytes without LF: too long whatever comes */
	s = make_line(SMTP_LINE_MAX, "", "");
	assert_int_equal(scan(s, &ov, &ll, &used), SMTP_SCAN_TOO_LONG);
	assert_int_equal(used, SMTP_LINE_MAX);
	assert_int_equal(ov, 1);
	free(s);
}

/* The overlong tail is skipped across calls: NEED with bytes to drop, then
 * the next line comes out normally. */
static void test_scan_overlong_skip(void **state)
{
	size_t ll, used;
	int ov = 0;
	char *s = make_line(SMTP_LINE_MAX + 10, "", "");

	(void)state;
	assert_int_equal(scan(s, &ov, &ll, &used), SMTP_SCAN_TOO_LONG);
	assert_int_equal(used, strlen(s));
	assert_int_equal(ov, 1);
	/* more of the same line: dropped, not reported again */
	assert_int_equal(scan("xxxxxxxx", &ov, &ll, &used), SMTP_SCAN_NEED);
	assert_int_equal(used, 8);
	assert_int_equal(ov, 1);
	assert_int_equal(scan("", &ov, &ll, &used), SMTP_SCAN_NEED);
	assert_int_equal(used, 0);
	/* its end, followed by a pipelined command */
	assert_int_equal(scan("xx\r\nNOOP\r\n", &ov, &ll, &used), SMTP_SCAN_NEED);
	assert_int_equal(used, 4);
	assert_int_equal(ov, 0);
	assert_int_equal(scan("NOOP\r\n", &ov, &ll, &used), SMTP_SCAN_LINE);
	assert_int_equal(ll, 4);
	free(s);
}

/* Drive the scanner the way the session does (a window of at most two
 * lines, drop *consumed every time, loop while progress) over a stream fed
 * in pieces of `piece` bytes; count reports and collect lines. */
struct scan_run {
	int too_long;
	int lines;
	char last[SMTP_LINE_MAX + 1];
};

static void scan_feed(const char *stream, size_t n, size_t piece, struct scan_run *r)
{
	char *buf = xmalloc(n + 1);
	size_t have = 0, fed = 0, ll, used;
	enum smtp_scan res;
	int ov = 0;

	memset(r, 0, sizeof(*r));
	while (fed < n || have > 0) {
		size_t add = n - fed < piece ? n - fed : piece;
		memcpy(buf + have, stream + fed, add);
		have += add;
		fed += add;
		for (;;) {
			size_t want = have < SMTP_LINE_MAX * 2 ? have : SMTP_LINE_MAX * 2;
			res = smtp_scan_line(buf, want, SMTP_LINE_MAX, &ov, &ll, &used);
			assert_true(used <= want);
			if (res == SMTP_SCAN_TOO_LONG)
				r->too_long++;
			if (res == SMTP_SCAN_LINE) {
				r->lines++;
				memcpy(r->last, buf, ll);
				r->last[ll] = '\0';
			}
			memmove(buf, buf + used, have - used);
			have -= used;
			if (res == SMTP_SCAN_NEED && used == 0)
				break;
		}
		if (fed == n)
			break;
	}
	free(buf);
}

static void test_scan_overlong_every_split(void **state)
{
	char *s = make_line(3000, "\r\n", "NOOP\r\n");
	struct scan_run r;
	size_t piece;

	(void)state;
	for (piece = 1; piece <= 3020; piece += piece < 40 ? 1 : 37) {
		scan_feed(s, strlen(s), piece, &r);
		assert_int_equal(r.too_long, 1);
		assert_int_equal(r.lines, 1);
		assert_string_equal(r.last, "NOOP");
	}
	free(s);
	/* a legal line fed in any pieces is one line */
	s = make_line(SMTP_LINE_MAX - 2, "\r\n", "QUIT\r\n");
	for (piece = 1; piece <= 520; piece++) {
		scan_feed(s, strlen(s), piece, &r);
		assert_int_equal(r.too_long, 0);
		assert_int_equal(r.lines, 2);
		assert_string_equal(r.last, "QUIT");
	}
	free(s);
}

/* ---------- smtp_parse_cmd ---------- */

static int cmd(const char *text, struct smtp_cmd *c, char *buf)
{
	size_t n = strlen(text);

	memcpy(buf, text, n);
	return smtp_parse_cmd(buf, n, c);
}

static void test_cmd_every_verb(void **state)
{
	static const struct {
		const char *name;
		enum smtp_verb verb;
	} t[] = {
	    {"HELO", SMTP_VERB_HELO}, {"EHLO", SMTP_VERB_EHLO},         {"DATA", SMTP_VERB_DATA},
	    {"BDAT", SMTP_VERB_BDAT}, {"RSET", SMTP_VERB_RSET},         {"NOOP", SMTP_VERB_NOOP},
	    {"QUIT", SMTP_VERB_QUIT}, {"VRFY", SMTP_VERB_VRFY},         {"EXPN", SMTP_VERB_EXPN},
	    {"HELP", SMTP_VERB_HELP}, {"STARTTLS", SMTP_VERB_STARTTLS}, {"AUTH", SMTP_VERB_AUTH},
	};
	char buf[128], text[128], lower[64];
	struct smtp_cmd c;
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_LEN(t); i++) {
		assert_int_equal(cmd(t[i].name, &c, buf), 0);
		assert_int_equal(c.verb, t[i].verb);
		assert_string_equal(c.arg, "");
		strcpy(lower, t[i].name);
		ascii_lower(lower);
		snprintf(text, sizeof(text), "%s some arg", lower);
		assert_int_equal(cmd(text, &c, buf), 0);
		assert_int_equal(c.verb, t[i].verb);
		assert_string_equal(c.arg, "some arg");
	}
	assert_int_equal(cmd("eHlO client.example", &c, buf), 0);
	assert_int_equal(c.verb, SMTP_VERB_EHLO);
	assert_string_equal(c.arg, "client.example");
}

static void test_cmd_mail_rcpt(void **state)
{
	struct smtp_cmd c;
	char buf[128];

	(void)state;
	assert_int_equal(cmd("MAIL FROM:<a@b.c>", &c, buf), 0);
	assert_int_equal(c.verb, SMTP_VERB_MAIL);
	assert_string_equal(c.arg, "<a@b.c>");
	assert_int_equal(cmd("mail from:  <a@b.c> SIZE=10", &c, buf), 0);
	assert_int_equal(c.verb, SMTP_VERB_MAIL);
	assert_string_equal(c.arg, "<a@b.c> SIZE=10");
	assert_int_equal(cmd("Rcpt To:<x@y.z>", &c, buf), 0);
	assert_int_equal(c.verb, SMTP_VERB_RCPT);
	assert_string_equal(c.arg, "<x@y.z>");
	assert_int_equal(cmd("RCPT TO: <x@y.z>   ", &c, buf), 0);
	assert_string_equal(c.arg, "<x@y.z>");
	/* no FROM:/TO: → an empty argument that parse_mail/rcpt refuse */
	assert_int_equal(cmd("MAIL <a@b.c>", &c, buf), 0);
	assert_int_equal(c.verb, SMTP_VERB_MAIL);
	assert_string_equal(c.arg, "");
	assert_int_equal(cmd("RCPT", &c, buf), 0);
	assert_int_equal(c.verb, SMTP_VERB_RCPT);
	assert_string_equal(c.arg, "");
	assert_int_equal(cmd("MAIL TO:<a@b.c>", &c, buf), 0);
	assert_string_equal(c.arg, "");
	assert_int_equal(cmd("RCPT FROM:<a@b.c>", &c, buf), 0);
	assert_string_equal(c.arg, "");
}

static void test_cmd_odd_lines(void **state)
{
	struct smtp_cmd c;
	char buf[64];

	(void)state;
	assert_int_equal(cmd("", &c, buf), 0);
	assert_int_equal(c.verb, SMTP_VERB_UNKNOWN);
	assert_string_equal(c.arg, "");
	assert_int_equal(cmd("FOO bar", &c, buf), 0);
	assert_int_equal(c.verb, SMTP_VERB_UNKNOWN);
	assert_string_equal(c.arg, "bar");
	assert_int_equal(cmd("DATAX", &c, buf), 0);
	assert_int_equal(c.verb, SMTP_VERB_UNKNOWN);
	assert_int_equal(cmd("QUI", &c, buf), 0);
	assert_int_equal(c.verb, SMTP_VERB_UNKNOWN);
	assert_int_equal(cmd("DATA   ", &c, buf), 0);
	assert_int_equal(c.verb, SMTP_VERB_DATA);
	assert_string_equal(c.arg, "");
	assert_int_equal(cmd("  NOOP", &c, buf), 0);
	assert_int_equal(c.verb, SMTP_VERB_UNKNOWN);
	/* 8-bit bytes are left for the argument parsers to judge */
	assert_int_equal(cmd("EHLO h\xc3\xa9.example", &c, buf), 0);
	assert_int_equal(c.verb, SMTP_VERB_EHLO);
}

static void test_cmd_control_chars(void **state)
{
	static const char *const bad[] = {"NO\rOP", "EHLO\tx", "EHLO x\x1b", "EHLO x\x7f", "\x01"};
	struct smtp_cmd c;
	char buf[64];
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_LEN(bad); i++)
		assert_int_equal(cmd(bad[i], &c, buf), -1);
	/* an embedded NUL */
	memcpy(buf, "NOOP\0x", 6);
	assert_int_equal(smtp_parse_cmd(buf, 6, &c), -1);
	memcpy(buf, "MAIL FROM:<a\0@b>", 16);
	assert_int_equal(smtp_parse_cmd(buf, 16, &c), -1);
}

/* ---------- smtp_parse_mail ---------- */

static char argbuf[2048];

static enum smtp_arg_err mail(const char *arg, struct smtp_mail_args *m)
{
	snprintf(argbuf, sizeof(argbuf), "%s", arg);
	return smtp_parse_mail(argbuf, m);
}

static enum smtp_arg_err rcpt(const char *arg, int utf8, struct smtp_rcpt_args *r)
{
	snprintf(argbuf, sizeof(argbuf), "%s", arg);
	return smtp_parse_rcpt(argbuf, utf8, r);
}

static void test_mail_basic(void **state)
{
	struct smtp_mail_args m;

	(void)state;
	assert_int_equal(mail("<a@b.example>", &m), SMTP_ARG_OK);
	assert_string_equal(m.addr, "a@b.example");
	assert_int_equal(m.has_size, 0);
	assert_int_equal(m.body, 0);
	assert_int_equal(m.smtputf8, 0);
	assert_int_equal(m.ret, 0);
	assert_null(m.envid);
	assert_null(m.auth);
	assert_int_equal(mail("<>", &m), SMTP_ARG_OK);
	assert_string_equal(m.addr, "");
	assert_int_equal(mail("<> SIZE=100 RET=HDRS", &m), SMTP_ARG_OK);
	assert_string_equal(m.addr, "");
	assert_int_equal(m.size, 100);
	/* "MAIL FROM: <addr>" with a space, via the command parser */
	{
		struct smtp_cmd c;
		char buf[64];
		assert_int_equal(cmd("MAIL FROM: <a@b.example>", &c, buf), 0);
		assert_int_equal(smtp_parse_mail(c.arg, &m), SMTP_ARG_OK);
		assert_string_equal(m.addr, "a@b.example");
	}
	assert_int_equal(mail("  <a@b.example>", &m), SMTP_ARG_OK);
}

static void test_mail_path_syntax(void **state)
{
	static const char *const bad[] = {
	    "",          "a@b.example",   "<a@b.example", "a@b.example>", "<a@b.example>x",
	    "<<a@b.c>>", "<a@b.c>SIZE=1", "<@a:>",        "<@a,b:c@d.e>", "<@:c@d.e>",
	    "<@a>",      "<@a,@b>",       "<@-a:c@d.e>",  "<@a,:c@d.e>",  "<\"a@b.c>",
	};
	struct smtp_mail_args m;
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_LEN(bad); i++) {
		enum smtp_arg_err e = mail(bad[i], &m);
		if (e != SMTP_ARG_SYNTAX)
			fail_msg("\"%s\": %d", bad[i], e);
	}
}

static void test_mail_source_route(void **state)
{
	struct smtp_mail_args m;
	struct smtp_rcpt_args r;

	(void)state;
	assert_int_equal(mail("<@relay.example:a@b.example>", &m), SMTP_ARG_OK);
	assert_string_equal(m.addr, "a@b.example");
	assert_int_equal(mail("<@r1.example,@r2.example:a@b.example>", &m), SMTP_ARG_OK);
	assert_string_equal(m.addr, "a@b.example");
	assert_int_equal(rcpt("<@[IPv6:::1],@[10.0.0.1]:x@y.example>", 0, &r), SMTP_ARG_OK);
	assert_string_equal(r.addr, "x@y.example");
	assert_int_equal(mail("<@[IPv6:::1:x@y.example>", &m), SMTP_ARG_SYNTAX);
}

static void test_mail_quoted_gt(void **state)
{
	struct smtp_mail_args m;

	(void)state;
	/* a '>' inside a quoted local part does not close the path */
	assert_int_equal(mail("<\"a>b\"@c.example> SIZE=5", &m), SMTP_ARG_OK);
	assert_string_equal(m.addr, "\"a>b\"@c.example");
	assert_int_equal(m.size, 5);
	assert_int_equal(mail("<\"a\\\">b\"@c.example>", &m), SMTP_ARG_OK);
	assert_string_equal(m.addr, "\"a\\\">b\"@c.example");
}

static void test_mail_lengths(void **state)
{
	struct smtp_mail_args m;
	char arg[600], local[80], dom[300];

	(void)state;
	/* path of exactly 256 octets with <>: 64 + 1 + 189 */
	memset(local, 'l', 64);
	local[64] = '\0';
	memset(dom, 'd', 189);
	dom[189] = '\0';
	for (int i = 63; i < 189; i += 64)
		dom[i] = '.';
	snprintf(arg, sizeof(arg), "<%s@%s>", local, dom);
	assert_int_equal(strlen(arg), 256);
	assert_int_equal(mail(arg, &m), SMTP_ARG_OK);
	/* 257 */
	dom[189] = 'd';
	dom[190] = '\0';
	snprintf(arg, sizeof(arg), "<%s@%s>", local, dom);
	assert_int_equal(mail(arg, &m), SMTP_ARG_BAD_ADDRESS);
	/* local part of 65 */
	memset(local, 'l', 65);
	local[65] = '\0';
	snprintf(arg, sizeof(arg), "<%s@b.example>", local);
	assert_int_equal(mail(arg, &m), SMTP_ARG_BAD_ADDRESS);
}

static void test_mail_size(void **state)
{
	static const char *const bad[] = {
	    "<a@b.c> SIZE=",    "<a@b.c> SIZE",
	    "<a@b.c> SIZE=abc", "<a@b.c> SIZE=-1",
	    "<a@b.c> SIZE=+1",  "<a@b.c> SIZE=1k",
	    "<a@b.c> SIZE=1=2", "<a@b.c> SIZE=18446744073709551616",
	};
	struct smtp_mail_args m;
	size_t i;

	(void)state;
	assert_int_equal(mail("<a@b.c> SIZE=0", &m), SMTP_ARG_OK);
	assert_int_equal(m.has_size, 1);
	assert_int_equal(m.size, 0);
	assert_int_equal(mail("<a@b.c> size=18446744073709551615", &m), SMTP_ARG_OK);
	assert_true(m.size == UINT64_MAX);
	for (i = 0; i < ARRAY_LEN(bad); i++)
		assert_int_equal(mail(bad[i], &m), SMTP_ARG_BAD_PARAM);
}

static void test_mail_body_ret_utf8(void **state)
{
	static const char *const bad[] = {
	    "<a@b.c> BODY=BINARYMIME", "<a@b.c> BODY=", "<a@b.c> BODY", "<a@b.c> BODY=8BIT",
	    "<a@b.c> RET=ALL",         "<a@b.c> RET",   "<a@b.c> RET=", "<a@b.c> SMTPUTF8=YES",
	    "<a@b.c> SMTPUTF8=",
	};
	struct smtp_mail_args m;
	size_t i;

	(void)state;
	assert_int_equal(mail("<a@b.c> BODY=7BIT", &m), SMTP_ARG_OK);
	assert_int_equal(m.body, 1);
	assert_int_equal(mail("<a@b.c> body=8bitmime", &m), SMTP_ARG_OK);
	assert_int_equal(m.body, 2);
	assert_int_equal(mail("<a@b.c> RET=FULL", &m), SMTP_ARG_OK);
	assert_int_equal(m.ret, 1);
	assert_int_equal(mail("<a@b.c> ret=hdrs", &m), SMTP_ARG_OK);
	assert_int_equal(m.ret, 2);
	assert_int_equal(mail("<a@b.c> SMTPUTF8", &m), SMTP_ARG_OK);
	assert_int_equal(m.smtputf8, 1);
	assert_int_equal(mail("<a@b.c>   SIZE=1    BODY=8BITMIME   SmtpUtf8  ", &m), SMTP_ARG_OK);
	assert_int_equal(m.size, 1);
	assert_int_equal(m.body, 2);
	assert_int_equal(m.smtputf8, 1);
	for (i = 0; i < ARRAY_LEN(bad); i++)
		if (mail(bad[i], &m) != SMTP_ARG_BAD_PARAM)
			fail_msg("%s", bad[i]);
}

static void test_mail_envid_auth(void **state)
{
	static const char *const bad[] = {
	    "<a@b.c> ENVID=",     "<a@b.c> ENVID",        "<a@b.c> ENVID=a+2",
	    "<a@b.c> ENVID=a+ZZ", "<a@b.c> ENVID=+0D+0A", "<a@b.c> ENVID=+00",
	    "<a@b.c> ENVID=+7F",  "<a@b.c> ENVID=+C3+A9", "<a@b.c> ENVID=\xc3\xa9",
	    "<a@b.c> AUTH=a+",    "<a@b.c> AUTH",         "<a@b.c> AUTH=+0A",
	};
	struct smtp_mail_args m;
	char arg[200];
	size_t i;

	(void)state;
	assert_int_equal(mail("<a@b.c> ENVID=QQ314159", &m), SMTP_ARG_OK);
	assert_string_equal(m.envid, "QQ314159");
	assert_int_equal(mail("<a@b.c> ENVID=a+2Bb+3dc+20d", &m), SMTP_ARG_OK);
	assert_string_equal(m.envid, "a+b=c d");
	assert_int_equal(mail("<a@b.c> AUTH=<>", &m), SMTP_ARG_OK);
	assert_string_equal(m.auth, "<>");
	assert_int_equal(mail("<a@b.c> AUTH=user+40example.com", &m), SMTP_ARG_OK);
	assert_string_equal(m.auth, "user@example.com");
	for (i = 0; i < ARRAY_LEN(bad); i++)
		if (mail(bad[i], &m) != SMTP_ARG_BAD_PARAM)
			fail_msg("%s", bad[i]);
	/* ENVID: at most 100 characters */
	snprintf(arg, sizeof(arg), "<a@b.c> ENVID=%0100d", 0);
	assert_int_equal(mail(arg, &m), SMTP_ARG_OK);
	snprintf(arg, sizeof(arg), "<a@b.c> ENVID=%0101d", 0);
	assert_int_equal(mail(arg, &m), SMTP_ARG_BAD_PARAM);
}

static void test_mail_requiretls(void **state)
{
	struct smtp_mail_args m;

	(void)state;
	memset(&m, 0, sizeof(m));
	assert_int_equal(mail("<a@b.c> REQUIRETLS", &m), SMTP_ARG_OK);
	assert_true(m.requiretls);
	assert_int_equal(mail("<a@b.c> requiretls SIZE=5", &m), SMTP_ARG_OK);
	assert_true(m.requiretls && m.size == 5);
	assert_int_equal(mail("<a@b.c> SIZE=5", &m), SMTP_ARG_OK);
	assert_false(m.requiretls);
	/* RFC 8689 3: no value; and not twice */
	assert_int_equal(mail("<a@b.c> REQUIRETLS=YES", &m), SMTP_ARG_BAD_PARAM);
	assert_int_equal(mail("<a@b.c> REQUIRETLS REQUIRETLS", &m), SMTP_ARG_BAD_PARAM);
}

static void test_mail_unknown_dup(void **state)
{
	struct smtp_mail_args m;

	(void)state;
	assert_int_equal(mail("<a@b.c> FOO=1", &m), SMTP_ARG_UNKNOWN_PARAM);
	assert_int_equal(mail("<a@b.c> X-FOO", &m), SMTP_ARG_UNKNOWN_PARAM);
	assert_int_equal(mail("<a@b.c> NOTIFY=NEVER", &m), SMTP_ARG_UNKNOWN_PARAM);
	assert_int_equal(mail("<a@b.c> BODY=7BIT SIZE=1 BODY=7BIT", &m), SMTP_ARG_BAD_PARAM);
	assert_int_equal(mail("<a@b.c> SIZE=1 size=1", &m), SMTP_ARG_BAD_PARAM);
	assert_int_equal(mail("<a@b.c> SMTPUTF8 SMTPUTF8", &m), SMTP_ARG_BAD_PARAM);
	assert_int_equal(mail("<a@b.c> =1", &m), SMTP_ARG_SYNTAX);
	assert_int_equal(mail("<a@b.c> -X=1", &m), SMTP_ARG_SYNTAX);
	assert_int_equal(mail("<a@b.c> SI_ZE=1", &m), SMTP_ARG_SYNTAX);
}

static void test_mail_utf8(void **state)
{
	struct smtp_mail_args m;

	(void)state;
	/* valid UTF-8 needs SMTPUTF8 */
	assert_int_equal(mail("<j\xc3\xb6rg@b.example>", &m), SMTP_ARG_NEEDS_UTF8);
	assert_int_equal(mail("<a@b\xc3\xbc.example>", &m), SMTP_ARG_NEEDS_UTF8);
	assert_int_equal(mail("<j\xc3\xb6rg@b.example> SMTPUTF8", &m), SMTP_ARG_OK);
	assert_string_equal(m.addr, "j\xc3\xb6rg@b.example");
	assert_int_equal(
	    mail("<\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf\xe5\x91\x8a> "
	         "SMTPUTF8",
	         &m),
	    SMTP_ARG_OK);
	assert_int_equal(mail("<\"j\xc3\xb6 rg\"@b.example> SMTPUTF8", &m), SMTP_ARG_OK);
	assert_int_equal(mail("<\xf0\x9f\x93\xa8@b.example> SMTPUTF8", &m), SMTP_ARG_OK);
	/* invalid UTF-8 is a bad address with or without SMTPUTF8 */
	assert_int_equal(mail("<\xc0\xaf@b.example> SMTPUTF8", &m), SMTP_ARG_BAD_ADDRESS);
	assert_int_equal(mail("<\xe0\x80\xaf@b.example> SMTPUTF8", &m), SMTP_ARG_BAD_ADDRESS);
	assert_int_equal(mail("<\xed\xa0\x80@b.example> SMTPUTF8", &m), SMTP_ARG_BAD_ADDRESS);
	assert_int_equal(mail("<\xf4\x90\x80\x80@b.example> SMTPUTF8", &m), SMTP_ARG_BAD_ADDRESS);
	assert_int_equal(mail("<\xc3@b.example> SMTPUTF8", &m), SMTP_ARG_BAD_ADDRESS);
	assert_int_equal(mail("<\xc3\xb6\x80@b.example>", &m), SMTP_ARG_BAD_ADDRESS);
	/* 8-bit in a parameter value of MAIL */
	assert_int_equal(mail("<a@b.c> SMTPUTF8 ENVID=\xc3\xb6", &m), SMTP_ARG_BAD_PARAM);
}

/* ---------- smtp_parse_rcpt ---------- */

static void test_rcpt_basic(void **state)
{
	struct smtp_rcpt_args r;

	(void)state;
	assert_int_equal(rcpt("<x@y.example>", 0, &r), SMTP_ARG_OK);
	assert_string_equal(r.addr, "x@y.example");
	assert_int_equal(r.notify, 0);
	assert_null(r.orcpt);
	assert_int_equal(rcpt("<>", 0, &r), SMTP_ARG_BAD_ADDRESS);
	assert_int_equal(rcpt("", 0, &r), SMTP_ARG_SYNTAX);
	assert_int_equal(rcpt("x@y.example", 0, &r), SMTP_ARG_SYNTAX);
	assert_int_equal(rcpt("<x@y.example> SIZE=1", 0, &r), SMTP_ARG_UNKNOWN_PARAM);
	assert_int_equal(rcpt("<x@y.example> FOO", 0, &r), SMTP_ARG_UNKNOWN_PARAM);
	assert_int_equal(rcpt("<x@@y.example>", 0, &r), SMTP_ARG_BAD_ADDRESS);
	assert_int_equal(rcpt("<x\xc3\xa9@y.example>", 0, &r), SMTP_ARG_NEEDS_UTF8);
	assert_int_equal(rcpt("<x\xc3\xa9@y.example>", 1, &r), SMTP_ARG_OK);
	assert_int_equal(rcpt("<x\xc3@y.example>", 1, &r), SMTP_ARG_BAD_ADDRESS);
}

static void test_rcpt_notify(void **state)
{
	static const char *const bad[] = {
	    "NOTIFY=",
	    "NOTIFY",
	    "NOTIFY=NEVER,SUCCESS",
	    "NOTIFY=DELAY,NEVER",
	    "NOTIFY=SUCCESS,",
	    "NOTIFY=,SUCCESS",
	    "NOTIFY=BOGUS",
	    "NOTIFY=SUCCESS;FAILURE",
	    "NOTIFY=SUCCESS,,DELAY",
	};
	struct smtp_rcpt_args r;
	char arg[128];
	size_t i;

	(void)state;
	assert_int_equal(rcpt("<x@y.z> NOTIFY=NEVER", 0, &r), SMTP_ARG_OK);
	assert_int_equal(r.notify, SMTP_NOTIFY_NEVER);
	assert_int_equal(rcpt("<x@y.z> NOTIFY=SUCCESS", 0, &r), SMTP_ARG_OK);
	assert_int_equal(r.notify, SMTP_NOTIFY_SUCCESS);
	assert_int_equal(rcpt("<x@y.z> notify=failure,delay", 0, &r), SMTP_ARG_OK);
	assert_int_equal(r.notify, SMTP_NOTIFY_FAILURE | SMTP_NOTIFY_DELAY);
	assert_int_equal(rcpt("<x@y.z> NOTIFY=DELAY,SUCCESS,FAILURE", 0, &r), SMTP_ARG_OK);
	assert_int_equal(r.notify, SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE | SMTP_NOTIFY_DELAY);
	assert_int_equal(rcpt("<x@y.z> NOTIFY=NEVER NOTIFY=NEVER", 0, &r), SMTP_ARG_BAD_PARAM);
	for (i = 0; i < ARRAY_LEN(bad); i++) {
		snprintf(arg, sizeof(arg), "<x@y.z> %s", bad[i]);
		if (rcpt(arg, 0, &r) != SMTP_ARG_BAD_PARAM)
			fail_msg("%s", arg);
	}
}

static void test_rcpt_orcpt(void **state)
{
	static const char *const bad[] = {
	    "ORCPT=",
	    "ORCPT",
	    "ORCPT=rfc822",
	    "ORCPT=rfc822;",
	    "ORCPT=x400;a",
	    "ORCPT=;a@b.c",
	    "ORCPT=rfc822;a+0Db",
	    "ORCPT=rfc822;a+4",
	    "ORCPT=rfc822;\xc3\xa9@b.c",
	    "ORCPT=rfc822;+C3+A9@b.c",
	};
	struct smtp_rcpt_args r;
	char arg[700];
	size_t i;

	(void)state;
	assert_int_equal(rcpt("<x@y.z> ORCPT=rfc822;a+40b.example", 0, &r), SMTP_ARG_OK);
	assert_string_equal(r.orcpt, "rfc822;a@b.example");
	assert_int_equal(rcpt("<x@y.z> ORCPT=RFC822;a@b.example NOTIFY=NEVER", 0, &r), SMTP_ARG_OK);
	assert_string_equal(r.orcpt, "RFC822;a@b.example");
	assert_int_equal(r.notify, SMTP_NOTIFY_NEVER);
	/* an encoded ';' in the address stays data */
	assert_int_equal(rcpt("<x@y.z> ORCPT=rfc822;a+3Bb@c.example", 0, &r), SMTP_ARG_OK);
	assert_string_equal(r.orcpt, "rfc822;a;b@c.example");
	assert_int_equal(rcpt("<x@y.z> ORCPT=utf-8;a@b.example", 0, &r), SMTP_ARG_OK);
	assert_int_equal(rcpt("<x@y.z> ORCPT=utf-8;\xc3\xa9@b.example", 1, &r), SMTP_ARG_OK);
	assert_string_equal(r.orcpt, "utf-8;\xc3\xa9@b.example");
	assert_int_equal(rcpt("<x@y.z> ORCPT=utf-8;\xc3\xa9@b.example", 0, &r), SMTP_ARG_BAD_PARAM);
	assert_int_equal(rcpt("<x@y.z> ORCPT=utf-8;\xc3@b.example", 1, &r), SMTP_ARG_BAD_PARAM);
	assert_int_equal(rcpt("<x@y.z> ORCPT=rfc822;a@b ORCPT=rfc822;a@b", 0, &r),
	                 SMTP_ARG_BAD_PARAM);
	for (i = 0; i < ARRAY_LEN(bad); i++) {
		snprintf(arg, sizeof(arg), "<x@y.z> %s", bad[i]);
		if (rcpt(arg, 1, &r) != SMTP_ARG_BAD_PARAM)
			fail_msg("%s", arg);
	}
	/* at most 500 characters */
	snprintf(arg, sizeof(arg), "<x@y.z> ORCPT=rfc822;%0493d", 0);
	assert_int_equal(rcpt(arg, 0, &r), SMTP_ARG_OK);
	assert_int_equal(strlen(r.orcpt), 500);
	snprintf(arg, sizeof(arg), "<x@y.z> ORCPT=rfc822;%0494d", 0);
	assert_int_equal(rcpt(arg, 0, &r), SMTP_ARG_BAD_PARAM);
}

/* ---------- smtp_address_valid ---------- */

static void test_address_valid(void **state)
{
	static const char *const good[] = {
	    "a@b",
	    "a.b@c.d",
	    "!#$%&'*+-/=?^_`{|}~@x.example",
	    "x@localhost",
	    "x@a-b.c-d.example",
	    "x@1.2.3.example",
	    "\"a b\"@x.example",
	    "\"a\\\"b\"@x.example",
	    "\"a\\\\b\"@x.example",
	    "\"\"@x.example",
	    "\"a@b\"@c.example",
	    "\"a.\"@c.example",
	    "\".a..b\"@c.example",
	    "a@[1.2.3.4]",
	    "a@[255.255.255.255]",
	    "a@[0.0.0.0]",
	    "a@[001.02.3.4]",
	    "a@[IPv6:::1]",
	    "a@[ipv6:::]",
	    "a@[IPv6:2001:db8::1]",
	    "a@[IPv6:1:2:3:4:5:6:7:8]",
	    "a@[IPv6:1:2:3::4:5:6]",
	    "a@[IPv6:1:2:3:4:5:6::]",
	    "a@[IPv6:::ffff:1.2.3.4]",
	    "a@[IPv6:1:2:3:4:5:6:1.2.3.4]",
	    "a@[IPv6:1:2:3:4::1.2.3.4]",
	    "a@[IPv6:ABCD:ef01::]",
	};
	static const char *const bad[] = {
	    "",
	    "a",
	    "@b",
	    "a@",
	    "a@@b",
	    "a@b@c",
	    ".a@b",
	    "a.@b",
	    "a..b@c",
	    "a b@c",
	    "a(b)@c",
	    "a,b@c",
	    "a@b..c",
	    "a@.b",
	    "a@b.",
	    "a@-b.c",
	    "a@b-.c",
	    "a@b_c.d",
	    "a@b c",
	    "\"a\"b@c",
	    "a\"b\"@c",
	    "\"a@c",
	    "\"a\"\"@c",
	    "\"a\\\"@c",
	    "\"a\x01\"@c",
	    "\"a\\\x01\"@c",
	    "\"a\x7f\"@c",
	    "a\x01@b",
	    "a@b\x7f",
	    "a@[1.2.3]",
	    "a@[1.2.3.256]",
	    "a@[1.2.3.4.5]",
	    "a@[1.2.3.4",
	    "a@1.2.3.4]",
	    "a@[1..2.3]",
	    "a@[1.2.3.0004]",
	    "a@[1.2.3.2000000000000]", /* fuzz: int overflow while reading a number */
	    "a@[]",
	    "a@[IPv6:]",
	    "a@[IPv6:1:2:3:4:5:6:7]",
	    "a@[IPv6:1:2:3:4:5:6:7:8:9]",
	    "a@[IPv6:1::2::3]",
	    "a@[IPv6:12345::]",
	    "a@[IPv6:1:2:3:4:5:6:7::]",
	    "a@[IPv6:1:2:3:4:5::1.2.3.4]",
	    "a@[IPv6:g::1]",
	    "a@[IPv6:1.2.3.4::]",
	    "a@[IPv6::1]",
	    "a@[IPv6:1:::2]",
	    "a@[IPv6:1:2:3:4:5:6:7:1.2.3.4]",
	    "a@[IPv6:::1.2.3]",
	    "a@[IPv4:1.2.3.4]",
	    "a@[foo:bar]",
	    "a@[1.2.3.4]x",
	    "a@x[1.2.3.4]",
	};
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_LEN(good); i++)
		if (!smtp_address_valid(good[i], 0) || !smtp_address_valid(good[i], 1))
			fail_msg("should be valid: %s", good[i]);
	for (i = 0; i < ARRAY_LEN(bad); i++)
		if (smtp_address_valid(bad[i], 0) || smtp_address_valid(bad[i], 1))
			fail_msg("should be invalid: %s", bad[i]);
}

static void test_address_lengths(void **state)
{
	char a[400];

	(void)state;
	/* local part 64 ok, 65 not */
	memset(a, 'l', 64);
	strcpy(a + 64, "@b.example");
	assert_true(smtp_address_valid(a, 0));
	memset(a, 'l', 65);
	strcpy(a + 65, "@b.example");
	assert_false(smtp_address_valid(a, 0));
	/* quoted local part counts its quotes */
	a[0] = '"';
	memset(a + 1, 'q', 62);
	strcpy(a + 63, "\"@b.example");
	assert_true(smtp_address_valid(a, 0));
	a[0] = '"';
	memset(a + 1, 'q', 63);
	strcpy(a + 64, "\"@b.example");
	assert_false(smtp_address_valid(a, 0));
	/* label 63 ok, 64 not */
	strcpy(a, "x@");
	memset(a + 2, 'd', 63);
	strcpy(a + 65, ".example");
	assert_true(smtp_address_valid(a, 0));
	strcpy(a, "x@");
	memset(a + 2, 'd', 64);
	strcpy(a + 66, ".example");
	assert_false(smtp_address_valid(a, 0));
	/* whole mailbox 254 ok, 255 not */
	memset(a, 0, sizeof(a));
	strcpy(a, "x@");
	for (size_t i = 2; i < 254; i++)
		a[i] = (i - 2) % 50 == 49 ? '.' : 'd';
	assert_int_equal(strlen(a), 254);
	assert_true(smtp_address_valid(a, 0));
	a[254] = 'd';
	assert_false(smtp_address_valid(a, 0));
}

static void test_address_utf8(void **state)
{
	static const char *const bad_utf8[] = {
	    "\xc0\xaf@b.example",         /* overlong '/' */
	    "\xc1\xbf@b.example",         /* overlong */
	    "\xe0\x80\xaf@b.example",     /* overlong 3-byte */
	    "\xe0\x9f\xbf@b.example",     /* overlong 3-byte */
	    "\xf0\x80\x80\xaf@b.example", /* overlong 4-byte */
	    "\xf0\x8f\xbf\xbf@b.example", /* overlong 4-byte */
	    "\xed\xa0\x80@b.example",     /* surrogate */
	    "\xed\xbf\xbf@b.example",     /* surrogate */
	    "\xf4\x90\x80\x80@b.example", /* > U+10FFFF */
	    "\xf5\x80\x80\x80@b.example", /* bad lead */
	    "\xff@b.example",
	    "\x80@b.example", /* lone continuation */
	    "\xc3@b.example", /* truncated */
	    "\xe2\x82@b.example",
	    "a@\xc3",
	    "a@b.\xe2\x82",
	    "\"\xc3\"@b.example",
	};
	size_t i;

	(void)state;
	assert_false(smtp_address_valid("j\xc3\xb6rg@b.example", 0));
	assert_true(smtp_address_valid("j\xc3\xb6rg@b.example", 1));
	assert_true(smtp_address_valid("a@m\xc3\xbcnchen.example", 1));
	assert_true(smtp_address_valid("\xed\x9f\xbf@b.example", 1));     /* U+D7FF */
	assert_true(smtp_address_valid("\xee\x80\x80@b.example", 1));     /* U+E000 */
	assert_true(smtp_address_valid("\xf4\x8f\xbf\xbf@b.example", 1)); /* U+10FFFF */
	assert_true(smtp_address_valid("\"\xc3\xb6 \xc3\xb6\"@b.example", 1));
	for (i = 0; i < ARRAY_LEN(bad_utf8); i++)
		if (smtp_address_valid(bad_utf8[i], 1))
			fail_msg("invalid UTF-8 accepted: #%zu", i);
	/* no UTF-8 in address literals */
	assert_false(smtp_address_valid("a@[1.2.3.\xc3\xb6]", 1));
}

static void test_address_domain(void **state)
{
	(void)state;
	assert_string_equal(smtp_address_domain("a@b.example"), "b.example");
	assert_string_equal(smtp_address_domain("\"a@x\"@b.example"), "b.example");
	assert_string_equal(smtp_address_domain("a@[1.2.3.4]"), "[1.2.3.4]");
	assert_string_equal(smtp_address_domain(""), "");
	assert_string_equal(smtp_address_domain("postmaster"), "");
}

/* ---------- smtp_parse_bdat ---------- */

static void test_bdat(void **state)
{
	static const char *const bad[] = {
	    "",
	    "abc",
	    "-1",
	    "+5",
	    "12 LASTX",
	    "12 FIRST",
	    "12LAST",
	    "12 LAST x",
	    "12 ",
	    "1 2",
	    "0x10",
	    "12\tLAST",
	    "LAST",
	    "18446744073709551616",
	    "000000000000000000001",
	};
	uint64_t size;
	int last;
	size_t i;

	(void)state;
	assert_int_equal(smtp_parse_bdat("0", &size, &last), 0);
	assert_true(size == 0 && last == 0);
	assert_int_equal(smtp_parse_bdat("123", &size, &last), 0);
	assert_true(size == 123 && last == 0);
	assert_int_equal(smtp_parse_bdat("123 LAST", &size, &last), 0);
	assert_true(size == 123 && last == 1);
	assert_int_equal(smtp_parse_bdat("7 last", &size, &last), 0);
	assert_true(size == 7 && last == 1);
	assert_int_equal(smtp_parse_bdat("7  LaSt", &size, &last), 0);
	assert_true(last == 1);
	assert_int_equal(smtp_parse_bdat(" 7", &size, &last), 0);
	assert_int_equal(smtp_parse_bdat("18446744073709551615 LAST", &size, &last), 0);
	assert_true(size == UINT64_MAX && last == 1);
	for (i = 0; i < ARRAY_LEN(bad); i++)
		if (smtp_parse_bdat(bad[i], &size, &last) != -1)
			fail_msg("accepted: \"%s\"", bad[i]);
}

/* ---------- SASL ---------- */

static char *b64(const char *raw, size_t n)
{
	char *out = xmalloc(base64_encoded_len(n) + 1);

	base64_encode((const unsigned char *)raw, n, out);
	return out;
}

static int plain(const char *raw, size_t n, const char **user, const char **pass, char *out,
                 size_t cap)
{
	char *e = b64(raw, n);
	int r = sasl_plain_decode(e, out, cap, user, pass);

	free(e);
	return r;
}

static void test_sasl_plain(void **state)
{
	static const struct {
		const char *raw;
		size_t n;
	} bad[] = {
	    {"other\0user\0pass", 15}, /* authzid differs from user */
	    {"\0\0pass", 6},           /* empty user */
	    {"\0user\0", 6},           /* empty password */
	    {"\0user\0pa\0ss", 11},    /* NUL in password */
	    {"\0us\0er\0pass", 11},    /* a third NUL */
	    {"userpass", 8},           /* no separators */
	    {"\0userpass", 9},         /* one separator */
	    {"", 0},
	    {"\0", 1},
	    {"\0\0", 2},
	    {"\0us\rer\0pass", 11}, /* control byte in the user name */
	    {"\0user\0pass\0", 11},
	};
	const char *user, *pass;
	char out[128];
	size_t i;

	(void)state;
	assert_int_equal(plain("\0user\0secret", 12, &user, &pass, out, sizeof(out)), 0);
	assert_string_equal(user, "user");
	assert_string_equal(pass, "secret");
	assert_int_equal(plain("user\0user\0p w", 13, &user, &pass, out, sizeof(out)), 0);
	assert_string_equal(user, "user");
	assert_string_equal(pass, "p w");
	assert_int_equal(
	    plain("\0j\xc3\xb6rg\0\xc3\xa9t\xc3\xa9", 12, &user, &pass, out, sizeof(out)), 0);
	assert_string_equal(user, "j\xc3\xb6rg");
	for (i = 0; i < ARRAY_LEN(bad); i++)
		if (plain(bad[i].raw, bad[i].n, &user, &pass, out, sizeof(out)) != -1)
			fail_msg("accepted bad PLAIN #%zu", i);
	/* bad base64, and an output buffer that is too small */
	assert_int_equal(sasl_plain_decode("!!!!", out, sizeof(out), &user, &pass), -1);
	assert_int_equal(sasl_plain_decode("AHVzZXIAc2VjcmV0", out, sizeof(out), &user, &pass), 0);
	assert_int_equal(sasl_plain_decode("AHVzZXIAc2VjcmV0", out, 12, &user, &pass), -1);
	assert_int_equal(sasl_plain_decode("AHVzZXIAc2VjcmV0", out, 13, &user, &pass), 0);
	assert_int_equal(sasl_plain_decode("AHVzZXIAc2VjcmV0", out, 0, &user, &pass), -1);
	assert_int_equal(sasl_plain_decode("=", out, sizeof(out), &user, &pass), -1);
}

static void test_sasl_login(void **state)
{
	char out[64], *e;

	(void)state;
	e = b64("user@example.com", 16);
	assert_int_equal(sasl_login_decode(e, out, sizeof(out)), 0);
	assert_string_equal(out, "user@example.com");
	assert_int_equal(sasl_login_decode(e, out, 16), -1);
	free(e);
	e = b64("a\0b", 3);
	assert_int_equal(sasl_login_decode(e, out, sizeof(out)), -1);
	free(e);
	assert_int_equal(sasl_login_decode("*", out, sizeof(out)), -1);
	/* RFC 4954 4: an empty response line is a zero-length value */
	memset(out, 'x', sizeof(out));
	assert_int_equal(sasl_login_decode("", out, sizeof(out)), 0);
	assert_string_equal(out, "");
	assert_int_equal(sasl_login_decode("", out, 1), 0);
	assert_string_equal(out, "");
	assert_int_equal(sasl_login_decode("", out, 0), -1);
	/* "=" means empty only as AUTH's initial response, not here */
	assert_int_equal(sasl_login_decode("=", out, sizeof(out)), -1);
	assert_int_equal(sasl_login_decode("====", out, sizeof(out)), -1);
}

/* What may stand as the HELO name in a Received header. */
static void test_helo_valid(void **state)
{
	static const char *const good[] = {
	    "mail.example.com",
	    "localhost",
	    "a-b.example",
	    "x1",
	    "123.example",
	    "[192.0.2.1]",
	    "[IPv6:2001:db8::1]",
	    "[ipv6:::1]",
	    "[IPv6:::ffff:192.0.2.1]",
	};
	static const char *const bad[] = {
	    "",
	    "caf\xc3\xa9.example",
	    "bad_name.example",
	    "-a.example",
	    "a-.example",
	    "a..b",
	    "a.",
	    ".a",
	    "a b",
	    "x\x01y",
	    "x\x7fy",
	    "\"quoted\"",
	    "[300.1.1.1]",
	    "[1.2.3.4",
	    "1.2.3.4]",
	    "[IPv6:zz::1]",
	    "[example]",
	    "[IPv4:1.2.3.4]",
	    "a@b",
	    "host\xff",
	};
	char label[80], name[300];
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_LEN(good); i++)
		if (!smtp_helo_valid(good[i]))
			fail_msg("should be valid: %s", good[i]);
	for (i = 0; i < ARRAY_LEN(bad); i++)
		if (smtp_helo_valid(bad[i]))
			fail_msg("should be invalid: %s", bad[i]);
	/* a label of 63 octets is fine, 64 is not; a name of 255 is, 256 not */
	memset(label, 'a', 64);
	label[63] = '\0';
	assert_true(smtp_helo_valid(label));
	label[63] = 'a';
	label[64] = '\0';
	assert_false(smtp_helo_valid(label));
	memset(name, 'a', sizeof(name));
	for (i = 50; i < 250; i += 51) /* labels of 50 and 51 octets */
		name[i] = '.';
	name[255] = '\0';
	assert_true(smtp_helo_valid(name));
	name[255] = 'a';
	name[256] = '\0';
	assert_false(smtp_helo_valid(name));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_scan_basic),
	    cmocka_unit_test(test_scan_limit),
	    cmocka_unit_test(test_scan_overlong_skip),
	    cmocka_unit_test(test_scan_overlong_every_split),
	    cmocka_unit_test(test_cmd_every_verb),
	    cmocka_unit_test(test_cmd_mail_rcpt),
	    cmocka_unit_test(test_cmd_odd_lines),
	    cmocka_unit_test(test_cmd_control_chars),
	    cmocka_unit_test(test_mail_basic),
	    cmocka_unit_test(test_mail_path_syntax),
	    cmocka_unit_test(test_mail_source_route),
	    cmocka_unit_test(test_mail_quoted_gt),
	    cmocka_unit_test(test_mail_lengths),
	    cmocka_unit_test(test_mail_size),
	    cmocka_unit_test(test_mail_body_ret_utf8),
	    cmocka_unit_test(test_mail_envid_auth),
	    cmocka_unit_test(test_mail_unknown_dup),
	    cmocka_unit_test(test_mail_requiretls),
	    cmocka_unit_test(test_mail_utf8),
	    cmocka_unit_test(test_rcpt_basic),
	    cmocka_unit_test(test_rcpt_notify),
	    cmocka_unit_test(test_rcpt_orcpt),
	    cmocka_unit_test(test_address_valid),
	    cmocka_unit_test(test_address_lengths),
	    cmocka_unit_test(test_address_utf8),
	    cmocka_unit_test(test_address_domain),
	    cmocka_unit_test(test_helo_valid),
	    cmocka_unit_test(test_bdat),
	    cmocka_unit_test(test_sasl_plain),
	    cmocka_unit_test(test_sasl_login),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
