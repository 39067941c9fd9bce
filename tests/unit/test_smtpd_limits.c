/*
 * Unit tests for the PURE limits of smtpd: smtpd_limits (the address keys
 * of the per-address limits: IPv4 alone, IPv6 by /64, IPv4-mapped IPv6 as
 * IPv4; the per-address counts; the stress rule with its hysteresis) and
 * smtpd_auth_guard (the per-address limit of password checks in flight,
 * the clean and suspect lanes, forgetting a failure after
 * SMTPD_AUTH_SUSPECT_MS or a success, the bound on the table; the clock
 * is passed in).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "smtpd/smtpd_auth_guard.h"
#include "smtpd/smtpd_limits.h"

static struct smtpd_addr_key key_of(const char *ip)
{
	struct sockaddr_storage ss;
	struct smtpd_addr_key k;

	memset(&ss, 0, sizeof(ss));
	if (strchr(ip, ':')) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		a->sin6_family = AF_INET6;
		assert_int_equal(inet_pton(AF_INET6, ip, &a->sin6_addr), 1);
		a->sin6_port = htons(1234);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		a->sin_family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, ip, &a->sin_addr), 1);
		a->sin_port = htons(4321);
	}
	smtpd_addr_key((struct sockaddr *)&ss, &k);
	return k;
}

static int same(const char *a, const char *b)
{
	struct smtpd_addr_key ka = key_of(a), kb = key_of(b);

	return memcmp(&ka, &kb, sizeof(ka)) == 0;
}

static void test_keys(void **state)
{
	(void)state;
	/* IPv4: each address alone */
	assert_true(same("192.0.2.1", "192.0.2.1"));
	assert_false(same("192.0.2.1", "192.0.2.2"));
	assert_false(same("127.1.0.1", "127.1.0.2"));
	/* IPv6: one key per /64 */
	assert_true(same("2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff"));
	assert_true(same("2001:db8:1:2:aaaa::", "2001:db8:1:2:0:0:0:7"));
	assert_false(same("2001:db8:1:2::1", "2001:db8:1:3::1"));
	assert_false(same("2001:db8:1:2::1", "2001:db9:1:2::1"));
	assert_true(same("::1", "::2"));
	/* IPv4-mapped IPv6: the IPv4 address, not the ::ffff:0:0/96 block */
	assert_true(same("::ffff:192.0.2.1", "192.0.2.1"));
	assert_false(same("::ffff:192.0.2.1", "::ffff:192.0.2.2"));
	/* families never meet */
	assert_false(same("0.0.0.1", "::1"));
}

static void test_key_text(void **state)
{
	static const struct {
		const char *ip, *text;
	} t[] = {
	    {"192.0.2.1", "192.0.2.1"},
	    {"::ffff:192.0.2.7", "192.0.2.7"},
	    {"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
	    {"::1", "::/64"},
	};
	struct smtpd_addr_key k;
	char out[64];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		k = key_of(t[i].ip);
		smtpd_addr_key_text(&k, out, sizeof(out));
		assert_string_equal(out, t[i].text);
	}
	memset(&k, 0, sizeof(k));
	smtpd_addr_key_text(&k, out, sizeof(out));
	assert_string_equal(out, "unknown");
}

static void test_counts(void **state)
{
	struct smtpd_addr_counts c;
	struct smtpd_addr_key a = key_of("2001:db8::1"), b = key_of("2001:db8::2"),
	                      d = key_of("192.0.2.9"), k;
	char ip[32];
	int i;

	(void)state;
	smtpd_addr_counts_init(&c);
	assert_int_equal(smtpd_addr_count(&c, &a), 0);
	smtpd_addr_count_inc(&c, &a);
	smtpd_addr_count_inc(&c, &b); /* the same /64 */
	smtpd_addr_count_inc(&c, &d);
	assert_int_equal(smtpd_addr_count(&c, &a), 2);
	assert_int_equal(smtpd_addr_count(&c, &d), 1);
	assert_int_equal(smtpd_addr_counts_size(&c), 2);
	smtpd_addr_count_dec(&c, &a);
	assert_int_equal(smtpd_addr_count(&c, &b), 1);
	smtpd_addr_count_dec(&c, &b);
	assert_int_equal(smtpd_addr_count(&c, &a), 0);
	assert_int_equal(smtpd_addr_counts_size(&c), 1); /* an entry only above zero */
	/* many addresses: the table grows and finds each */
	for (i = 0; i < 5000; i++) {
		snprintf(ip, sizeof(ip), "10.%d.%d.1", i / 256, i % 256);
		k = key_of(ip);
		smtpd_addr_count_inc(&c, &k);
	}
	assert_int_equal(smtpd_addr_counts_size(&c), 5001);
	for (i = 0; i < 5000; i += 7) {
		snprintf(ip, sizeof(ip), "10.%d.%d.1", i / 256, i % 256);
		k = key_of(ip);
		assert_int_equal(smtpd_addr_count(&c, &k), 1);
	}
	smtpd_addr_counts_fini(&c); /* frees what is left (ASan checks) */
}

static void test_stress(void **state)
{
	int s = 0, changes = 0, next;
	uint64_t n;

	(void)state;
	/* max 1000: begins at 800, ends below 700 */
	assert_false(smtpd_stress_next(0, 799, 1000));
	assert_true(smtpd_stress_next(0, 800, 1000));
	assert_true(smtpd_stress_next(1, 700, 1000));
	assert_false(smtpd_stress_next(1, 699, 1000));
	/* up and down once: one begin, one end */
	for (n = 0; n <= 1000; n++) {
		next = smtpd_stress_next(s, n, 1000);
		changes += next != s;
		s = next;
	}
	for (n = 1000; n + 1 > 0; n--) {
		next = smtpd_stress_next(s, n, 1000);
		changes += next != s;
		s = next;
	}
	assert_int_equal(changes, 2);
	assert_false(s);
	/* tiny caps */
	assert_true(smtpd_stress_next(0, 1, 1));
	assert_false(smtpd_stress_next(1, 0, 1));
	assert_true(smtpd_stress_next(0, 4, 5));
	assert_false(smtpd_stress_next(0, 3, 5));
	assert_false(smtpd_stress_next(1, 3, 5));
}

#define T0 1000000u

static void test_per_address_limit(void **state)
{
	struct smtpd_auth_guard g;
	struct smtpd_auth_ticket t1, t2, t3, t4;
	struct smtpd_addr_key a = key_of("2001:db8::1"), a2 = key_of("2001:db8::2"),
	                      b = key_of("192.0.2.1");

	(void)state;
	smtpd_auth_guard_init(&g, 100);
	assert_int_equal(smtpd_auth_guard_begin(&g, &a, 0, T0, &t1), SMTPD_AUTH_CLEAN);
	assert_int_equal(smtpd_auth_guard_begin(&g, &a2, 0, T0, &t2), SMTPD_AUTH_CLEAN);
	/* a third of the same /64 must wait for one of them */
	assert_int_equal(smtpd_auth_guard_begin(&g, &a, 0, T0, &t3), SMTPD_AUTH_BUSY);
	assert_int_equal(smtpd_auth_guard_begin(&g, &b, 0, T0, &t4), SMTPD_AUTH_CLEAN);
	smtpd_auth_guard_end(&g, &t1, 0, 1, T0 + 80);
	assert_int_equal(smtpd_auth_guard_begin(&g, &a, 0, T0 + 80, &t3), SMTPD_AUTH_CLEAN);
	smtpd_auth_guard_end(&g, &t2, 0, 1, T0 + 90);
	smtpd_auth_guard_end(&g, &t3, 0, 1, T0 + 90);
	smtpd_auth_guard_end(&g, &t4, 0, 1, T0 + 90);
	assert_int_equal(smtpd_auth_guard_size(&g), 0); /* nothing in flight, nothing failed */
	smtpd_auth_guard_fini(&g);
}

static void test_failures_make_a_key_suspect(void **state)
{
	struct smtpd_auth_guard g;
	struct smtpd_auth_ticket t;
	struct smtpd_addr_key a = key_of("198.51.100.7"), b = key_of("198.51.100.8");

	(void)state;
	smtpd_auth_guard_init(&g, 100);
	assert_int_equal(smtpd_auth_guard_begin(&g, &a, 0, T0, &t), SMTPD_AUTH_CLEAN);
	smtpd_auth_guard_end(&g, &t, 1, 0, T0);
	assert_int_equal(smtpd_auth_guard_size(&g), 1); /* the failure is remembered */
	/* the key's next checks, from any session, go to the suspect lane */
	assert_int_equal(smtpd_auth_guard_begin(&g, &a, 0, T0 + 1000, &t), SMTPD_AUTH_SUSPECT);
	smtpd_auth_guard_end(&g, &t, 1, 0, T0 + 1000);
	/* other keys stay clean; a session that failed is suspect anywhere */
	assert_int_equal(smtpd_auth_guard_begin(&g, &b, 0, T0 + 1000, &t), SMTPD_AUTH_CLEAN);
	smtpd_auth_guard_end(&g, &t, 0, 0, T0 + 1000); /* never ran */
	assert_int_equal(smtpd_auth_guard_begin(&g, &b, 1, T0 + 1000, &t), SMTPD_AUTH_SUSPECT);
	smtpd_auth_guard_end(&g, &t, 0, 0, T0 + 1000);
	/* the failure is forgotten SMTPD_AUTH_SUSPECT_MS after the last one */
	assert_int_equal(
	    smtpd_auth_guard_begin(&g, &a, 0, T0 + 1000 + SMTPD_AUTH_SUSPECT_MS - 1, &t),
	    SMTPD_AUTH_SUSPECT);
	smtpd_auth_guard_end(&g, &t, 0, 0, T0 + 1000 + SMTPD_AUTH_SUSPECT_MS - 1);
	assert_int_equal(smtpd_auth_guard_begin(&g, &a, 0, T0 + 1000 + SMTPD_AUTH_SUSPECT_MS, &t),
	                 SMTPD_AUTH_CLEAN);
	smtpd_auth_guard_end(&g, &t, 0, 1, T0 + 1000 + SMTPD_AUTH_SUSPECT_MS);
	assert_int_equal(smtpd_auth_guard_size(&g), 0);
	smtpd_auth_guard_fini(&g);
}

static void test_success_makes_a_key_clean(void **state)
{
	struct smtpd_auth_guard g;
	struct smtpd_auth_ticket t;
	struct smtpd_addr_key a = key_of("203.0.113.5");

	(void)state;
	smtpd_auth_guard_init(&g, 100);
	smtpd_auth_guard_begin(&g, &a, 0, T0, &t);
	smtpd_auth_guard_end(&g, &t, 1, 0, T0); /* a typo */
	assert_int_equal(smtpd_auth_guard_begin(&g, &a, 0, T0 + 5, &t), SMTPD_AUTH_SUSPECT);
	smtpd_auth_guard_end(&g, &t, 0, 1, T0 + 90); /* then the right password */
	assert_int_equal(smtpd_auth_guard_size(&g), 0);
	assert_int_equal(smtpd_auth_guard_begin(&g, &a, 0, T0 + 100, &t), SMTPD_AUTH_CLEAN);
	smtpd_auth_guard_end(&g, &t, 0, 1, T0 + 190);
	smtpd_auth_guard_fini(&g);
}

static void test_sweep_and_bound(void **state)
{
	struct smtpd_auth_guard g;
	struct smtpd_auth_ticket t[4], u;
	struct smtpd_addr_key k[4] = {key_of("10.0.0.1"), key_of("10.0.0.2"), key_of("10.0.0.3"),
	                              key_of("10.0.0.4")};
	int i;

	(void)state;
	smtpd_auth_guard_init(&g, 3);
	for (i = 0; i < 3; i++)
		assert_int_equal(smtpd_auth_guard_begin(&g, &k[i], 0, T0, &t[i]), SMTPD_AUTH_CLEAN);
	/* full: a fourth key is not tracked, and waits as suspect */
	assert_int_equal(smtpd_auth_guard_begin(&g, &k[3], 0, T0, &t[3]), SMTPD_AUTH_SUSPECT);
	assert_false(t[3].counted);
	assert_int_equal(smtpd_auth_guard_size(&g), 3);
	for (i = 0; i < 4; i++)
		smtpd_auth_guard_end(&g, &t[i], 1, 0, T0); /* all fail */
	assert_int_equal(smtpd_auth_guard_size(&g), 3);    /* no room for the fourth */
	/* the failures expire; a begin after SMTPD_AUTH_SWEEP_MS sweeps them */
	assert_int_equal(smtpd_auth_guard_begin(&g, &k[3], 0, T0 + SMTPD_AUTH_SUSPECT_MS, &u),
	                 SMTPD_AUTH_CLEAN);
	assert_int_equal(smtpd_auth_guard_size(&g), 1);
	smtpd_auth_guard_end(&g, &u, 0, 1, T0 + SMTPD_AUTH_SUSPECT_MS);
	assert_int_equal(smtpd_auth_guard_size(&g), 0);
	/* entries in flight at fini are freed (ASan checks) */
	smtpd_auth_guard_begin(&g, &k[0], 0, T0, &u);
	smtpd_auth_guard_fini(&g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_keys),
	    cmocka_unit_test(test_key_text),
	    cmocka_unit_test(test_counts),
	    cmocka_unit_test(test_stress),
	    cmocka_unit_test(test_per_address_limit),
	    cmocka_unit_test(test_failures_make_a_key_suspect),
	    cmocka_unit_test(test_success_makes_a_key_clean),
	    cmocka_unit_test(test_sweep_and_bound),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
