/*
 * Unit tests for dkim/dkim_hdr (PURE): the signed header set, header
 * field splitting, the end of the header section found piece by piece,
 * and the From domain of a field value and of a whole header section
 * (folded, encoded, quoted, commented, grouped, several addresses).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dkim/dkim_hdr.h"
#include "util/util.h"

/* ---- the signed set ----------------------------------------------------------- */

static void test_signed_set(void **state)
{
	static const char *const yes[] = {"From",
	                                  "from",
	                                  "TO",
	                                  "Cc",
	                                  "Subject",
	                                  "Date",
	                                  "message-id",
	                                  "Reply-To",
	                                  "MIME-Version",
	                                  "Content-Type",
	                                  "content-transfer-encoding",
	                                  "List-Unsubscribe",
	                                  "List-Unsubscribe-Post"};
	static const char *const no[] = {"Received",
	                                 "Bcc",
	                                 "Sender",
	                                 "DKIM-Signature",
	                                 "Return-Path",
	                                 "X-Mailer",
	                                 "List-Unsubscribe-Po",
	                                 "Fro",
	                                 "From2",
	                                 "",
	                                 "List-Id"};

	for (size_t i = 0; i < ARRAY_LEN(yes); i++)
		assert_true(dkim_hdr_signed(yes[i], strlen(yes[i])));
	for (size_t i = 0; i < ARRAY_LEN(no); i++)
		assert_false(dkim_hdr_signed(no[i], strlen(no[i])));
	/* the length is what counts, not a NUL */
	assert_true(dkim_hdr_signed("Fromage", 4));
	/* the table holds the twelve names and nothing else */
	size_t n = 0;
	while (dkim_signed_names[n])
		n++;
	assert_int_equal(n, 12);
	assert_string_equal(dkim_oversigned_names[0], "From");
	assert_null(dkim_oversigned_names[1]);
}

/* ---- fields -------------------------------------------------------------------- */

static void test_fields_split(void **state)
{
	const char sec[] = "From: a@example.com\r\n"
	                   "Subject: one\r\n two\r\n\tthree\r\n"
	                   "X-Empty:\r\n"
	                   "no colon here\r\n"
	                   "To : b@example.net\r\n"
	                   "\r\n"
	                   "body";
	struct dkim_field f;
	size_t used, off = 0;

	assert_int_equal(dkim_hdr_next(sec, strlen(sec), &f, &used), 1);
	assert_int_equal(f.name_len, 4);
	assert_int_equal(f.len, strlen("From: a@example.com"));
	assert_memory_equal(f.value, " a@example.com", f.value_len);
	off += used;
	assert_int_equal(dkim_hdr_next(sec + off, strlen(sec) - off, &f, &used), 1);
	assert_int_equal(f.len, strlen("Subject: one\r\n two\r\n\tthree"));
	assert_int_equal(used, f.len + 2);
	off += used;
	assert_int_equal(dkim_hdr_next(sec + off, strlen(sec) - off, &f, &used), 1);
	assert_int_equal(f.name_len, 7);
	assert_int_equal(f.value_len, 0);
	off += used;
	assert_int_equal(dkim_hdr_next(sec + off, strlen(sec) - off, &f, &used), 1);
	assert_int_equal(f.name_len, 0); /* no colon: not a field */
	off += used;
	assert_int_equal(dkim_hdr_next(sec + off, strlen(sec) - off, &f, &used), 1);
	assert_int_equal(f.name_len, 2); /* "To", the blank before ':' left out */
	off += used;
	assert_int_equal(dkim_hdr_next(sec + off, strlen(sec) - off, &f, &used), 0);
	assert_int_equal(used, 2);
	assert_string_equal(sec + off + used, "body");
}

static void test_fields_edges(void **state)
{
	struct dkim_field f;
	size_t used;

	/* nothing, an empty line, a bare LF */
	assert_int_equal(dkim_hdr_next("", 0, &f, &used), 0);
	assert_int_equal(used, 0);
	assert_int_equal(dkim_hdr_next("\n", 1, &f, &used), 0);
	assert_int_equal(used, 1);
	/* a field with no line end at all */
	assert_int_equal(dkim_hdr_next("Subject: x", 10, &f, &used), 1);
	assert_int_equal(f.len, 10);
	assert_int_equal(used, 10);
	/* bare LF line ends, folded */
	assert_int_equal(dkim_hdr_next("A: 1\n 2\nB: 3\n", 13, &f, &used), 1);
	assert_int_equal(f.len, 7);
	assert_int_equal(used, 8);
	/* a continuation line first: no field */
	assert_int_equal(dkim_hdr_next(" x: y\r\nA: b\r\n", 13, &f, &used), 1);
	assert_int_equal(f.name_len, 0);
	/* a folded line that ends the input */
	assert_int_equal(dkim_hdr_next("A: 1\r\n 2", 8, &f, &used), 1);
	assert_int_equal(f.len, 8);
}

/* ---- end of the section ---------------------------------------------------------- */

static void test_end_whole(void **state)
{
	assert_int_equal(dkim_hdr_end("A: b\r\n\r\nbody", 12, 0), 8);
	assert_int_equal(dkim_hdr_end("\r\nbody", 6, 0), 2);
	assert_int_equal(dkim_hdr_end("\nbody", 5, 0), 1);
	assert_int_equal(dkim_hdr_end("A: b\n\nbody", 10, 0), 6);
	assert_int_equal(dkim_hdr_end("A: b\r\n B\r\n", 11, 0), 0);
	assert_int_equal(dkim_hdr_end("A: b\r\n\r", 7, 0), 0);
	assert_int_equal(dkim_hdr_end("", 0, 0), 0);
	/* "\r\n \r\n" is a folded line holding a blank, not the end */
	assert_int_equal(dkim_hdr_end("A: b\r\n \r\nC: d\r\n\r\n", 17, 0), 17);
}

/* The same message cut at every place, searched piece by piece, finds
 * the same end as when it is searched whole. */
static void test_end_pieces(void **state)
{
	const char *msgs[] = {"From: a@b.example\r\nTo: c@d.example\r\n\r\nbody\r\n",
	                      "\r\nno header\r\n", "A: 1\n\nB", "A: 1\r\n\r\n"};

	for (size_t m = 0; m < ARRAY_LEN(msgs); m++) {
		size_t n = strlen(msgs[m]), want = dkim_hdr_end(msgs[m], n, 0);

		assert_true(want > 0);
		for (size_t step = 1; step <= n; step++) {
			size_t got = 0, searched = 0;
			for (size_t have = step; got == 0; have += step) {
				size_t len = have < n ? have : n;
				got = dkim_hdr_end(msgs[m], len, searched);
				searched = len;
				if (len == n)
					break;
			}
			assert_int_equal(got, want);
		}
	}
}

/* ---- the From domain --------------------------------------------------------------- */

static const struct from_case {
	const char *value;
	enum dkim_from want;
	const char *domain;
} from_cases[] = {
    {" jane@example.com", DKIM_FROM_OK, "example.com"},
    {" Jane Doe <jane@Example.COM>", DKIM_FROM_OK, "example.com"},
    {" <jane@example.com.>", DKIM_FROM_OK, "example.com"},
    {" \"Doe, Jane\" <jane@example.com>", DKIM_FROM_OK, "example.com"},
    {" \"a@evil.example\" <jane@example.com>", DKIM_FROM_OK, "example.com"},
    {" \"a <x@evil.example>\" <jane@example.com>", DKIM_FROM_OK, "example.com"},
    {" jane@example.com (Jane, at work@evil.example)", DKIM_FROM_OK, "example.com"},
    {" (c (nested, @x) c) jane@example.com", DKIM_FROM_OK, "example.com"},
    {" Jane\r\n <jane@\r\n example.com>", DKIM_FROM_OK, "example.com"},
    {"\r\n\tJane Doe\r\n\t<jane@example.com>", DKIM_FROM_OK, "example.com"},
    /* encoded words are display-name atoms, never decoded */
    {" =?UTF-8?B?SsOkbmU=?= <jane@example.com>", DKIM_FROM_OK, "example.com"},
    {" =?utf-8?q?J=C3=A4ne_=40home?= <jane@example.com>", DKIM_FROM_OK, "example.com"},
    {" =?utf-8?q?Doe,_Jane?= <jane@example.com>", DKIM_FROM_OK, "example.com"},
    {" =?utf-8?q?a@evil.example?= <jane@example.com>", DKIM_FROM_OK, "example.com"},
    /* UTF-8 (RFC 6532): a non-ASCII local part and display name */
    {" J\xc3\xa4ne <j\xc3\xa4ne@example.com>", DKIM_FROM_OK, "example.com"},
    {" j\xc3\xa4ne@b\xc3\xbc"
     "cher.example",
     DKIM_FROM_OK,
     "b\xc3\xbc"
     "cher.example"},
    {" \"jane@x\"@example.com", DKIM_FROM_OK, "example.com"},
    {" jane@example . com", DKIM_FROM_OK, "example.com"},
    {" <@route.example,@r2.example:jane@example.com>", DKIM_FROM_OK, "example.com"},
    {" Team: jane@example.com;", DKIM_FROM_OK, "example.com"},
    {" jane@example.com,", DKIM_FROM_OK, "example.com"},
    /* several */
    {" a@example.com, b@example.org", DKIM_FROM_MULTIPLE, NULL},
    {" a@example.com, a@example.com", DKIM_FROM_MULTIPLE, NULL},
    {" Team: a@example.com, b@example.com;", DKIM_FROM_MULTIPLE, NULL},
    {" A <a@example.com>, B <b@example.com>", DKIM_FROM_MULTIPLE, NULL},
    /* none */
    {"", DKIM_FROM_NONE, NULL},
    {" ", DKIM_FROM_NONE, NULL},
    {" jane", DKIM_FROM_NONE, NULL},
    {" Jane Doe", DKIM_FROM_NONE, NULL},
    {" undisclosed-recipients:;", DKIM_FROM_NONE, NULL},
    {" <>", DKIM_FROM_NONE, NULL},
    {" <jane>", DKIM_FROM_NONE, NULL},
    {" jane@", DKIM_FROM_NONE, NULL},
    {" jane@.", DKIM_FROM_NONE, NULL},
    {" jane@example..com", DKIM_FROM_NONE, NULL},
    {" jane@example.com..", DKIM_FROM_NONE, NULL},
    {" jane@.example.com", DKIM_FROM_NONE, NULL},
    {" jane@[192.0.2.1]", DKIM_FROM_NONE, NULL},
    {" <jane@[IPv6:2001:db8::1]>", DKIM_FROM_NONE, NULL},
    {" jane@\"example.com\"", DKIM_FROM_NONE, NULL},
    {" (only a comment @example.com)", DKIM_FROM_NONE, NULL},
    {" \"jane@example.com\"", DKIM_FROM_NONE, NULL},
    {" jane@exa\x01mple.com", DKIM_FROM_NONE, NULL},
};

static void test_from_values(void **state)
{
	for (size_t i = 0; i < ARRAY_LEN(from_cases); i++) {
		const struct from_case *c = &from_cases[i];
		char out[DKIM_DOMAIN_MAX + 1] = "unset";
		enum dkim_from got = dkim_from_domain(c->value, strlen(c->value), out, sizeof out);

		if (got != c->want)
			fail_msg("case %zu %s: got %d, want %d", i, c->value, got, c->want);
		if (c->want == DKIM_FROM_OK)
			assert_string_equal(out, c->domain);
		if (c->want != DKIM_FROM_OK)
			assert_string_equal(out, "unset");
	}
}

static void test_from_angle_unclosed(void **state)
{
	char out[DKIM_DOMAIN_MAX + 1];

	/* "<junk" has no '@': the angle address has no domain */
	assert_int_equal(dkim_from_domain(" jane@example.com <junk", 23, out, sizeof out),
	                 DKIM_FROM_NONE);
	assert_int_equal(dkim_from_domain(" Jane <jane@example.com", 23, out, sizeof out),
	                 DKIM_FROM_OK);
	assert_string_equal(out, "example.com");
}

static void test_from_bounds(void **state)
{
	char v[600], out[DKIM_DOMAIN_MAX + 1], small[8];
	size_t n;

	/* a domain of 253 octets fits; 254 does not */
	n = (size_t)snprintf(v, sizeof v, " a@");
	memset(v + n, 'a', 253);
	v[n + 253] = '\0';
	for (size_t i = n + 63; i < n + 253; i += 64)
		v[i] = '.';
	assert_int_equal(dkim_from_domain(v, strlen(v), out, sizeof out), DKIM_FROM_OK);
	assert_int_equal(strlen(out), 253);
	strcat(v, "a");
	assert_int_equal(dkim_from_domain(v, strlen(v), out, sizeof out), DKIM_FROM_NONE);
	/* a long domain stops at the buffer, whatever the input */
	memset(v + n, 'b', 590 - n);
	v[590] = '\0';
	assert_int_equal(dkim_from_domain(v, strlen(v), out, sizeof out), DKIM_FROM_NONE);
	/* a buffer too small for the domain */
	assert_int_equal(dkim_from_domain(" a@example.com", 14, small, sizeof small),
	                 DKIM_FROM_NONE);
	/* comments nested deep and never closed */
	memset(v, '(', 500);
	v[500] = '\0';
	assert_int_equal(dkim_from_domain(v, 500, out, sizeof out), DKIM_FROM_NONE);
}

/* ---- a whole header section ---------------------------------------------------------- */

static void test_section_from(void **state)
{
	char out[DKIM_DOMAIN_MAX + 1];
	const char *one = "Received: from x\r\n by y\r\nSubject: s\r\n"
	                  "FROM: Jane\r\n <jane@Example.org>\r\nTo: b@c.example\r\n\r\n";
	const char *two = "From: a@example.org\r\nTo: b@c.example\r\nfrom: a@example.org\r\n\r\n";
	const char *none = "Sender: a@example.org\r\nX-From: a@example.org\r\n\r\n";
	const char *prefix = "From-Address: a@x.example\r\nFrom : <a@example.org>\r\n";
	const char *folded_name = "Subject: a\r\n From: a@x.example\r\nFrom: b@example.org\r\n";

	assert_int_equal(dkim_hdr_from_domain(one, strlen(one), out, sizeof out), DKIM_FROM_OK);
	assert_string_equal(out, "example.org");
	assert_int_equal(dkim_hdr_from_domain(two, strlen(two), out, sizeof out),
	                 DKIM_FROM_MULTIPLE);
	assert_int_equal(dkim_hdr_from_domain(none, strlen(none), out, sizeof out), DKIM_FROM_NONE);
	assert_int_equal(dkim_hdr_from_domain(prefix, strlen(prefix), out, sizeof out),
	                 DKIM_FROM_OK);
	assert_string_equal(out, "example.org");
	/* a "From:" inside a folded Subject line is not a field */
	assert_int_equal(dkim_hdr_from_domain(folded_name, strlen(folded_name), out, sizeof out),
	                 DKIM_FROM_OK);
	assert_string_equal(out, "example.org");
	assert_int_equal(dkim_hdr_from_domain("", 0, out, sizeof out), DKIM_FROM_NONE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_signed_set),          cmocka_unit_test(test_fields_split),
	    cmocka_unit_test(test_fields_edges),        cmocka_unit_test(test_end_whole),
	    cmocka_unit_test(test_end_pieces),          cmocka_unit_test(test_from_values),
	    cmocka_unit_test(test_from_angle_unclosed), cmocka_unit_test(test_from_bounds),
	    cmocka_unit_test(test_section_from),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
