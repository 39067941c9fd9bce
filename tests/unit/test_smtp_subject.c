/*
 * Unit tests for smtpd/smtp_subject (PURE): RFC 2047 encoded words of a
 * Subject value (B and Q, UTF-8 and latin1, adjacent words, malformed
 * and unknown-charset words kept, the output bound).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "smtpd/smtp_subject.h"
#include "util/util.h"

static void test_decode(void **state)
{
	static const struct {
		const char *in, *want;
	} t[] = {
	    {"plain text", "plain text"},
	    {"=?UTF-8?B?SGVsbG8gd29ybGQ=?=", "Hello world"},
	    {"=?utf-8?q?caf=C3=A9_au_lait?=", "caf\xc3\xa9 au lait"},
	    {"=?iso-8859-1?Q?Gr=FC=DFe?=", "Gr\xc3\xbc\xc3\x9f"
	                                   "e"},
	    {"=?us-ascii?q?a?= =?us-ascii?q?b?=", "ab"},          /* RFC 2047 6.2 */
	    {"=?utf-8?q?a?=\t =?utf-8?q?b?= c", "ab c"},          /* space before text kept */
	    {"x =?utf-8?q?a?= y", "x a y"},                       /* text around words */
	    {"=?utf-8*en?q?hi?=", "hi"},                          /* RFC 2231 language */
	    {"=?koi8-r?B?8NLJ18XU?=", "=?koi8-r?B?8NLJ18XU?="},   /* unknown charset: kept */
	    {"=?utf-8?x?abc?=", "=?utf-8?x?abc?="},               /* unknown encoding */
	    {"=?utf-8?q?a b?=", "=?utf-8?q?a b?="},               /* space inside: no word */
	    {"=?utf-8?q?bad=Z1?=", "=?utf-8?q?bad=Z1?="},         /* bad hex */
	    {"=?utf-8?q?cut=", "=?utf-8?q?cut="},                 /* no end */
	    {"=?utf-8?b?!!!!?=", "=?utf-8?b?!!!!?="},             /* bad base64 */
	    {"=?utf-8?q?a?= =?koi8-r?q?b?=", "a =?koi8-r?q?b?="}, /* only decoded words join */
	    {"caf\xc3\xa9 (SMTPUTF8)", "caf\xc3\xa9 (SMTPUTF8)"},
	    {"", ""},
	};
	char out[256];

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(t); i++) {
		size_t n = smtp_subject_decode(t[i].in, strlen(t[i].in), out, sizeof(out));
		if (strcmp(out, t[i].want) != 0 || n != strlen(t[i].want))
			fail_msg("\"%s\": got \"%s\" (%zu)", t[i].in, out, n);
	}
}

static void test_bound(void **state)
{
	char out[6];

	(void)state;
	assert_int_equal(smtp_subject_decode("abcdefgh", 8, out, sizeof(out)), 5);
	assert_string_equal(out, "abcde");
	assert_int_equal(smtp_subject_decode("=?utf-8?q?abcdefgh?=", 20, out, sizeof(out)), 5);
	assert_string_equal(out, "abcde");
	/* a latin1 character that does not fit whole is left out */
	assert_int_equal(smtp_subject_decode("=?latin1?q?abcd=E9?=", 20, out, sizeof(out)), 4);
	assert_string_equal(out, "abcd");
	assert_int_equal(smtp_subject_decode("abc", 3, out, 1), 0);
	assert_string_equal(out, "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_decode),
	    cmocka_unit_test(test_bound),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
