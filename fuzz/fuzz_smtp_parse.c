/*
 * libFuzzer target for smtpd/smtp_parse: the input is a client's byte
 * stream. It is cut into lines with smtp_scan_line the way the session
 * does, each line goes through smtp_parse_cmd, and its argument through
 * the parser for its verb (every argument parser also sees every line, so
 * each one meets arbitrary text). Every buffer is an exact-size heap copy,
 * so AddressSanitizer catches a read one byte too far.
 *
 * Beyond "no crash", it checks what the rest of the server relies on:
 * accepted addresses are valid Mailboxes within the limits, ASCII unless
 * SMTPUTF8, decoded ESMTP values hold no control bytes, and a HELO name
 * found valid is safe in a Received header.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtpd/smtp_parse.h"
#include "fuzz_util.h"

static int helo_safe(const char *s)
{
	for (; *s; s++)
		if (*s <= ' ' || *s >= 0x7f || strchr("()\"\\;", *s))
			return 0;
	return 1;
}

static int clean(const char *s, int allow_8bit)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c < 0x20 || c == 0x7f || (c >= 0x80 && !allow_8bit))
			return 0;
	}
	return 1;
}

static void check_address(const char *addr, int utf8)
{
	CHECK(smtp_address_valid(addr, utf8));
	CHECK(strlen(addr) <= 254);
	CHECK(clean(addr, utf8));
	CHECK(smtp_address_domain(addr)[0] != '\0');
}

static void fuzz_mail(const char *arg)
{
	struct smtp_mail_args m;
	char *a = fuzz_cstr(arg, strlen(arg));

	if (smtp_parse_mail(a, &m) == SMTP_ARG_OK) {
		CHECK(m.addr);
		if (*m.addr)
			check_address(m.addr, m.smtputf8);
		CHECK(m.body >= 0 && m.body <= 2 && m.ret >= 0 && m.ret <= 2);
		CHECK(!m.envid || (clean(m.envid, 0) && *m.envid));
		CHECK(!m.auth || (clean(m.auth, 0) && *m.auth));
	}
	free(a);
}

static void fuzz_rcpt(const char *arg, int utf8)
{
	struct smtp_rcpt_args r;
	char *a = fuzz_cstr(arg, strlen(arg));

	if (smtp_parse_rcpt(a, utf8, &r) == SMTP_ARG_OK) {
		CHECK(r.addr && *r.addr);
		check_address(r.addr, utf8);
		CHECK(r.notify <= 15);
		CHECK(!(r.notify & SMTP_NOTIFY_NEVER) || r.notify == SMTP_NOTIFY_NEVER);
		CHECK(!r.orcpt || (clean(r.orcpt, utf8) && strchr(r.orcpt, ';')));
	}
	free(a);
}

static void fuzz_bdat(const char *arg)
{
	uint64_t size;
	int last = -1;

	if (smtp_parse_bdat(arg, &size, &last) == 0)
		CHECK(last == 0 || last == 1);
}

static void fuzz_sasl(const char *arg)
{
	char out[300];
	const char *user, *pass;

	if (sasl_plain_decode(arg, out, sizeof(out), &user, &pass) == 0) {
		CHECK(*user && *pass && clean(user, 1));
		CHECK(user > out && user < out + sizeof(out) && pass > user);
	}
	/* a value with no embedded NUL; empty only from an empty response */
	if (sasl_login_decode(arg, out, sizeof(out)) == 0)
		CHECK(strlen(out) < sizeof(out) && (*out || !*arg));
}

/* One command line, as the session gets it (NUL-terminated copy). */
static void fuzz_line(const char *p, size_t n)
{
	char *line = fuzz_cstr(p, n);
	struct smtp_cmd c;

	if (smtp_parse_cmd(line, n, &c) == 0) {
		CHECK(c.verb >= SMTP_VERB_UNKNOWN && c.verb < SMTP_VERB__COUNT);
		CHECK(c.arg >= line && c.arg <= line + n);
		CHECK(clean(c.arg, 1));
		fuzz_mail(c.arg);
		fuzz_rcpt(c.arg, 0);
		fuzz_rcpt(c.arg, 1);
		fuzz_bdat(c.arg);
		fuzz_sasl(c.arg);
	}
	free(line);
	/* the address checker on raw text, whatever it holds */
	line = fuzz_cstr(p, n);
	if (strlen(line) == n && smtp_address_valid(line, 1))
		CHECK(smtp_address_domain(line) > line);
	/* a HELO name that goes into a Received header: printable ASCII
	 * without white space, parentheses or quotes */
	if (smtp_helo_valid(line))
		CHECK(helo_safe(line));
	free(line);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	size_t off = 0, want, ll, used;
	enum smtp_scan r;
	int ov = 0, reports = 0;

	while (off < size) {
		/* the session scans a window of at most two lines' worth */
		want = size - off < SMTP_LINE_MAX * 2 ? size - off : SMTP_LINE_MAX * 2;
		r = smtp_scan_line(in + off, want, SMTP_LINE_MAX, &ov, &ll, &used);
		CHECK(used <= want);
		if (r == SMTP_SCAN_LINE) {
			CHECK(ll < used && ll <= SMTP_LINE_MAX - 2 && !ov);
			CHECK(in[off + used - 1] == '\n' && !memchr(in + off, '\n', ll));
			fuzz_line(in + off, ll);
		} else if (r == SMTP_SCAN_TOO_LONG) {
			CHECK(used > 0);
			reports++;
		}
		if (r == SMTP_SCAN_NEED && used == 0) {
			CHECK(!ov && !memchr(in + off, '\n', want) && want < SMTP_LINE_MAX);
			/* the unfinished tail still exercises the parsers */
			fuzz_line(in + off, want);
			break;
		}
		off += used;
	}
	/* each TOO_LONG is one overlong line: never more than the lines there */
	CHECK(reports <= (int)(size / SMTP_LINE_MAX) + 1);
	return 0;
}
