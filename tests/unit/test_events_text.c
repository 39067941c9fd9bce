/*
 * Unit tests for events/events_text (PURE) and events/events_hook_util:
 * UTF-8 cleaning, RFC 3339 times both ways, the webhook retry delay, the
 * signature (known answers computed with Python's hmac), and which URLs
 * a webhook may use.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "conf/conf.h"
#include "events/events.h"
#include "events/events_text.h"
#include "util/util.h"

static void assert_clean(const char *in, size_t n, const char *want)
{
	char *got = events_utf8_clean(in, n);

	assert_string_equal(got, want);
	/* Valid exactly when cleaning changes nothing. */
	assert_int_equal(events_utf8_valid(in, n), strlen(want) == n && memcmp(in, want, n) == 0);
	free(got);
}

static void test_utf8_clean(void **state)
{
	(void)state;
	assert_clean("", 0, "");
	assert_clean("plain ascii", 11, "plain ascii");
	assert_clean("h\xc3\xa9", 3, "h\xc3\xa9");               /* é */
	assert_clean("\xf0\x9f\x93\xaf", 4, "\xf0\x9f\x93\xaf"); /* U+1F4EF */
	assert_clean("a\xff"
	             "b",
	             3,
	             "a\xef\xbf\xbd"
	             "b");                                                       /* not UTF-8 */
	assert_clean("\xc3", 1, "\xef\xbf\xbd");                                 /* cut short */
	assert_clean("\xc0\xaf", 2, "\xef\xbf\xbd\xef\xbf\xbd");                 /* overlong */
	assert_clean("\xed\xa0\x80", 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"); /* surrogate */
	assert_clean("\xf4\x90\x80\x80", 4,
	             "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"); /* above U+10FFFF */
	assert_clean("a\0b", 3,
	             "a\xef\xbf\xbd"
	             "b"); /* NUL */
}

static void assert_time(const char *in, int64_t want)
{
	int64_t got = -1;

	if (events_time_parse(in, &got) != 0)
		fail_msg("'%s' did not parse", in);
	if (got != want)
		fail_msg("'%s': %lld, want %lld", in, (long long)got, (long long)want);
}

static void test_time_parse(void **state)
{
	int64_t t;

	(void)state;
	assert_time("1767225600", 1767225600000LL);
	assert_time("0", 0);
	assert_time("2026-01-01", 1767225600000LL);
	assert_time("2026-01-01T00:00:00Z", 1767225600000LL);
	assert_time("2026-01-01t00:00:01.5z", 1767225601500LL);
	assert_time("2026-01-01T01:00:00+01:00", 1767225600000LL);
	assert_time("2026-01-01T01:00:00 01:00", 1767225600000LL); /* '+' decoded as a space */
	assert_time("2025-12-31T23:00:00-01:00", 1767225600000LL);
	assert_time("2024-02-29T12:34:56.789123Z", 1709210096789LL);
	assert_time("2016-12-31T23:59:60Z", 1483228799000LL); /* a leap second is :59 */
	assert_time("9999-12-31T23:59:59.999Z", 253402300799999LL);
	assert_time("253402300799", 253402300799000LL);
	const char *bad[] = {"",
	                     "-1",
	                     "1e9",
	                     "12345678901234",
	                     "2026-1-01",
	                     "2026-13-01",
	                     "2026-02-29",
	                     "1969-12-31",
	                     "2026-01-01T24:00:00Z",
	                     "2026-01-01T00:60:00Z",
	                     "2026-01-01T00:00:00",
	                     "2026-01-01T00:00:00+1:00",
	                     "2026-01-01T00:00:00+01",
	                     "2026-01-01T00:00:00.Z",
	                     "2026-01-01X00:00:00Z",
	                     "2026-01-01T00:00:00Zjunk",
	                     "now",
	                     "253402300800",              /* year 10000 */
	                     "9999-12-31T23:59:59-01:00", /* year 10000 in UTC */
	                     NULL};
	for (int i = 0; bad[i]; i++)
		if (events_time_parse(bad[i], &t) == 0)
			fail_msg("'%s' parsed as %lld", bad[i], (long long)t);
	assert_int_equal(events_time_parse(NULL, &t), -1);
}

static void test_time_format(void **state)
{
	char s[32];
	int64_t back;

	(void)state;
	events_time_format(1767225600000LL, s, sizeof(s));
	assert_string_equal(s, "2026-01-01T00:00:00.000Z");
	events_time_format(1709210096789LL, s, sizeof(s));
	assert_string_equal(s, "2024-02-29T12:34:56.789Z");
	assert_int_equal(events_time_parse(s, &back), 0);
	assert_true(back == 1709210096789LL);
	events_time_format(-5, s, sizeof(s));
	assert_string_equal(s, "1970-01-01T00:00:00.000Z");
}

static void test_hook_delay(void **state)
{
	(void)state;
	assert_true(events_hook_delay_ms(10, 1) == 10000);
	assert_true(events_hook_delay_ms(10, 2) == 20000);
	assert_true(events_hook_delay_ms(10, 3) == 40000);
	assert_true(events_hook_delay_ms(10, 9) == 2560000);
	assert_true(events_hook_delay_ms(10, 10) == 3600000); /* at most an hour */
	assert_true(events_hook_delay_ms(10, 1000000) == 3600000);
	assert_true(events_hook_delay_ms(1, 0) == 1000);
	assert_true(events_hook_delay_ms(7200, 1) == 3600000);
}

static void test_hook_sign(void **state)
{
	char sig[65];
	const char body[] = "{\"events\":[]}", body2[] = "{\"a\":\"\xc3\xa9\"}";

	(void)state;
	events_hook_sign("whsec_test_secret_0123", 1767225600, body, strlen(body), sig);
	assert_string_equal(sig,
	                    "d2172ac82ce373870fc0c1b68ba616355e0bcac8138c9c20485f4619ed8859e9");
	/* The key is the secret's bytes as given (UTF-8 here), the body raw bytes. */
	events_hook_sign("s\xc3\xa9"
	                 "cret-\xc3\xbc-0123456789",
	                 1700000000, body2, strlen(body2), sig);
	assert_string_equal(sig,
	                    "d03939f3aee202740edac1f5aaba327ff8d4267fd7ed043d399d3de15cc7558a");
}

static void test_hook_urls(void **state)
{
	const char *why = NULL;
	struct conf_net nets[2];
	struct sockaddr_in6 mapped;

	(void)state;
	assert_true(events_hook_url_ok("https://hooks.example.com/posthorn?x=1", &why));
	assert_true(events_hook_url_ok("http://127.0.0.1:8080/h", &why));
	assert_true(events_hook_url_ok("HTTPS://[::1]:8443/", &why));
	assert_false(events_hook_url_ok("ftp://example.com/", &why));
	assert_string_equal(why, "expected an http:// or https:// URL");
	assert_false(events_hook_url_ok("https://exa mple.com/", &why));
	assert_false(events_hook_url_ok("https:///path", &why));
	assert_false(events_hook_url_ok("not a url", &why));
	assert_false(events_hook_url_ok("hooks.example.com/h", &why));
	/* 127.0.0.0/8 and ::1/128 */
	memset(nets, 0, sizeof(nets));
	nets[0].family = AF_INET;
	nets[0].addr[0] = 127;
	nets[0].prefix = 8;
	nets[1].family = AF_INET6;
	nets[1].addr[15] = 1;
	nets[1].prefix = 128;
	assert_true(events_hook_url_blocked("http://127.0.0.2:9/h", nets, 2));
	assert_true(events_hook_url_blocked("http://[::1]/h", nets, 2));
	assert_false(events_hook_url_blocked("http://192.0.2.1/h", nets, 2));
	assert_false(
	    events_hook_url_blocked("http://localhost/h", nets, 2)); /* a name: at connect */
	assert_false(events_hook_url_blocked("http://127.0.0.1/h", nets, 0));
	memset(&mapped, 0, sizeof(mapped));
	mapped.sin6_family = AF_INET6;
	inet_pton(AF_INET6, "::ffff:127.0.0.1", &mapped.sin6_addr);
	assert_true(events_hook_addr_blocked((struct sockaddr *)&mapped, nets, 2));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_utf8_clean),  cmocka_unit_test(test_time_parse),
	    cmocka_unit_test(test_time_format), cmocka_unit_test(test_hook_delay),
	    cmocka_unit_test(test_hook_sign),   cmocka_unit_test(test_hook_urls),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
