/*
 * Unit tests for smtpd/smtpd_reply: the table of fixed SMTP replies. Every
 * entry is there, is a well-formed reply line, carries an enhanced status
 * code of its own class (RFC 3463: 2xx, 4xx and 5xx replies), and says
 * something no other entry says.
 */
#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "smtpd/smtpd_reply.h"

/* "C.d+.d+ " at p, with C the reply's class digit. */
static int enhanced_code_ok(const char *p, char class)
{
	int part;

	if (p[0] != class || p[1] != '.')
		return 0;
	p += 2;
	for (part = 0; part < 2; part++) {
		if (!isdigit((unsigned char)*p))
			return 0;
		while (isdigit((unsigned char)*p))
			p++;
		if (*p++ != (part == 0 ? '.' : ' '))
			return 0;
	}
	return *p != '\0';
}

static void test_every_reply_well_formed(void **state)
{
	int r;

	(void)state;
	for (r = 0; r < R__COUNT; r++) {
		const char *t = smtpd_reply_text((enum smtpd_reply)r);
		if (!t)
			fail_msg("reply %d has no text", r);
		if (strlen(t) < 4 || !isdigit((unsigned char)t[0]) ||
		    !isdigit((unsigned char)t[1]) || !isdigit((unsigned char)t[2]) || t[3] != ' ' ||
		    t[0] < '2' || t[0] > '5')
			fail_msg("reply %d: not a reply line: \"%s\"", r, t);
		if (strchr(t, '\r') || strchr(t, '\n'))
			fail_msg("reply %d: line break inside: \"%s\"", r, t);
		if (t[0] != '3' && !enhanced_code_ok(t + 4, t[0]))
			fail_msg("reply %d: no enhanced status code of class %c: \"%s\"", r, t[0],
			         t);
	}
}

static void test_no_reply_twice(void **state)
{
	int a, b;

	(void)state;
	for (a = 0; a < R__COUNT; a++)
		for (b = a + 1; b < R__COUNT; b++)
			if (strcmp(smtpd_reply_text((enum smtpd_reply)a),
			           smtpd_reply_text((enum smtpd_reply)b)) == 0)
				fail_msg("replies %d and %d are the same text", a, b);
}

static void test_known_texts(void **state)
{
	(void)state;
	/* the ones other code and the docs rely on */
	assert_string_equal(smtpd_reply_text(R_QUEUE_ERROR),
	                    "451 4.3.0 Error: queue file write error, try again later");
	assert_string_equal(smtpd_reply_text(R_SHUTDOWN),
	                    "421 4.3.2 Service shutting down, closing connection");
	assert_string_equal(smtpd_reply_text(R_RELAY_DENIED), "554 5.7.1 Relay access denied");
	assert_string_equal(smtpd_reply_text(R_AUTH_PLAIN_GO), "334 ");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_every_reply_well_formed),
	    cmocka_unit_test(test_no_reply_twice),
	    cmocka_unit_test(test_known_texts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
