/*
 * Unit tests for dns_mx (PURE): MX ordering and shuffling with injected
 * randomness, dedup, caps, null MX, implicit MX, address interleaving and
 * the final route status. No sockets, no DNS server.
 */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "dns/dns_mx.h"
#include "util/util.h"

/* Always the first candidate: Fisher-Yates then reverses nothing... */
static uint32_t rnd_zero(void *arg, uint32_t n)
{
	return 0;
}

/* ...and always the last keeps the sorted order. */
static uint32_t rnd_last(void *arg, uint32_t n)
{
	return n - 1;
}

/* Replays a script of values (each taken modulo n). */
struct script {
	const uint32_t *v;
	size_t n, i;
};

static uint32_t rnd_script(void *arg, uint32_t n)
{
	struct script *s = arg;

	return s->v[s->i++ % s->n] % n;
}

static struct dns_addr v4(const char *s)
{
	struct dns_addr a = {.family = AF_INET};

	assert_int_equal(inet_pton(AF_INET, s, a.addr), 1);
	return a;
}

static struct dns_addr v6(const char *s)
{
	struct dns_addr a = {.family = AF_INET6};

	assert_int_equal(inet_pton(AF_INET6, s, a.addr), 1);
	return a;
}

static void test_order_by_preference(void **state)
{
	const struct dns_mx_rr rr[] = {
	    {"mx30.example.com", 30}, {"mx10.example.com", 10}, {"mx20.example.com", 20}};
	struct dns_route r;

	dns_route_plan(&r, "example.com", DNS_OK, rr, 3, rnd_last, NULL);
	assert_int_equal(r.status, DNS_OK);
	assert_false(r.null_mx);
	assert_false(r.implicit_mx);
	assert_int_equal(r.n_hosts, 3);
	assert_string_equal(r.hosts[0].name, "mx10.example.com");
	assert_int_equal(r.hosts[0].pref, 10);
	assert_string_equal(r.hosts[1].name, "mx20.example.com");
	assert_string_equal(r.hosts[2].name, "mx30.example.com");
	dns_route_clear(&r);
	assert_int_equal(r.n_hosts, 0);
	assert_null(r.hosts);
}

static void test_equal_preferences_shuffled(void **state)
{
	const struct dns_mx_rr rr[] = {{"a.example", 10}, {"b.example", 10}, {"c.example", 20}};
	struct dns_route r;

	/* rnd_last: j == i at every step, the sorted (input) order stays. */
	dns_route_plan(&r, "example", DNS_OK, rr, 3, rnd_last, NULL);
	assert_string_equal(r.hosts[0].name, "a.example");
	assert_string_equal(r.hosts[1].name, "b.example");
	assert_string_equal(r.hosts[2].name, "c.example");
	dns_route_clear(&r);

	/* rnd_zero swaps the two equals; the lone 20 never moves ahead. */
	dns_route_plan(&r, "example", DNS_OK, rr, 3, rnd_zero, NULL);
	assert_string_equal(r.hosts[0].name, "b.example");
	assert_string_equal(r.hosts[1].name, "a.example");
	assert_string_equal(r.hosts[2].name, "c.example");
	dns_route_clear(&r);
}

/* Every permutation of a three-way tie is reachable, and only the tie moves. */
static void test_shuffle_reaches_all_orders(void **state)
{
	const struct dns_mx_rr rr[] = {
	    {"z.example", 5}, {"x.example", 10}, {"y.example", 10}, {"w.example", 10}};
	const uint32_t vals[] = {0, 1, 2};
	int seen[27] = {0}, distinct = 0;
	uint32_t a, b;

	for (a = 0; a < 3; a++)
		for (b = 0; b < 3; b++) {
			uint32_t v[2] = {vals[a], vals[b]};
			struct script s = {v, 2, 0};
			struct dns_route r;
			int key;

			dns_route_plan(&r, "example", DNS_OK, rr, 4, rnd_script, &s);
			assert_string_equal(r.hosts[0].name, "z.example");
			key = (r.hosts[1].name[0] - 'w') * 9 + (r.hosts[2].name[0] - 'w') * 3 +
			      (r.hosts[3].name[0] - 'w');
			if (!seen[key]++)
				distinct++;
			dns_route_clear(&r);
		}
	assert_int_equal(distinct, 6);
}

static void test_dedup_keeps_lowest_preference(void **state)
{
	const struct dns_mx_rr rr[] = {
	    {"MX.Example.COM.", 20}, {"mx.example.com", 10}, {"other.example.com", 15}};
	struct dns_route r;

	dns_route_plan(&r, "example.com", DNS_OK, rr, 3, rnd_last, NULL);
	assert_int_equal(r.n_hosts, 2);
	assert_string_equal(r.hosts[0].name, "mx.example.com");
	assert_int_equal(r.hosts[0].pref, 10);
	assert_string_equal(r.hosts[1].name, "other.example.com");
	dns_route_clear(&r);
}

static void test_cap_hosts(void **state)
{
	struct dns_mx_rr rr[25];
	char names[25][32];
	struct dns_route r;
	size_t i;

	for (i = 0; i < 25; i++) {
		snprintf(names[i], sizeof names[i], "mx%02zu.example", i);
		rr[i] = (struct dns_mx_rr){names[i], (unsigned)(100 - i)};
	}
	dns_route_plan(&r, "example", DNS_OK, rr, 25, rnd_last, NULL);
	assert_int_equal(r.n_hosts, DNS_MAX_HOSTS);
	assert_string_equal(r.hosts[0].name, "mx24.example"); /* preference 76 */
	assert_int_equal(r.hosts[DNS_MAX_HOSTS - 1].pref, 100 - 24 + DNS_MAX_HOSTS - 1);
	dns_route_clear(&r);
}

static void test_null_mx(void **state)
{
	const struct dns_mx_rr dot[] = {{".", 0}};
	const struct dns_mx_rr empty[] = {{"", 0}};
	struct dns_route r;

	dns_route_plan(&r, "example.com", DNS_OK, dot, 1, rnd_last, NULL);
	assert_true(r.null_mx);
	assert_int_equal(r.status, DNS_NODATA);
	assert_int_equal(r.n_hosts, 0);
	assert_non_null(strstr(r.error, "null MX"));
	dns_route_clear(&r);

	/* c-ares hands the root exchange over as "". */
	dns_route_plan(&r, "example.com", DNS_OK, empty, 1, rnd_last, NULL);
	assert_true(r.null_mx);
	assert_int_equal(r.status, DNS_NODATA);
	dns_route_finish(&r); /* leaves a settled failure alone */
	assert_int_equal(r.status, DNS_NODATA);
	dns_route_clear(&r);
}

/* A root exchange beside real ones names no host: skipped, not "null MX". */
static void test_root_beside_real_mx(void **state)
{
	const struct dns_mx_rr rr[] = {{"", 0}, {"mx.example.com", 10}};
	struct dns_route r;

	dns_route_plan(&r, "example.com", DNS_OK, rr, 2, rnd_last, NULL);
	assert_false(r.null_mx);
	assert_int_equal(r.status, DNS_OK);
	assert_int_equal(r.n_hosts, 1);
	assert_string_equal(r.hosts[0].name, "mx.example.com");
	dns_route_clear(&r);
}

static void test_unusable_exchange_names(void **state)
{
	const struct dns_mx_rr rr[] = {{"bad name.example", 10}, {"a..b", 20}};
	struct dns_route r;

	dns_route_plan(&r, "example.com", DNS_OK, rr, 2, rnd_last, NULL);
	assert_false(r.null_mx);
	assert_int_equal(r.status, DNS_NODATA);
	assert_int_equal(r.n_hosts, 0);
	dns_route_clear(&r);
}

static void test_implicit_mx(void **state)
{
	struct dns_route r;

	dns_route_plan(&r, "Example.COM.", DNS_NODATA, NULL, 0, rnd_last, NULL);
	assert_int_equal(r.status, DNS_OK);
	assert_true(r.implicit_mx);
	assert_int_equal(r.n_hosts, 1);
	assert_string_equal(r.hosts[0].name, "example.com");
	assert_int_equal(r.hosts[0].pref, 0);
	dns_route_clear(&r);

	/* A NOERROR answer with no MX in it is NODATA too. */
	dns_route_plan(&r, "example.com", DNS_OK, NULL, 0, rnd_last, NULL);
	assert_true(r.implicit_mx);
	assert_int_equal(r.n_hosts, 1);
	dns_route_clear(&r);
}

static void test_mx_failures_pass_through(void **state)
{
	struct dns_route r;

	dns_route_plan(&r, "example.com", DNS_NXDOMAIN, NULL, 0, rnd_last, NULL);
	assert_int_equal(r.status, DNS_NXDOMAIN);
	assert_int_equal(r.n_hosts, 0);
	assert_non_null(r.error);
	dns_route_clear(&r);

	dns_route_plan(&r, "example.com", DNS_TEMPFAIL, NULL, 0, rnd_last, NULL);
	assert_int_equal(r.status, DNS_TEMPFAIL);
	dns_route_finish(&r);
	assert_int_equal(r.status, DNS_TEMPFAIL);
	dns_route_clear(&r);

	dns_route_plan(&r, "example.com", DNS_CANCELLED, NULL, 0, rnd_last, NULL);
	assert_int_equal(r.status, DNS_CANCELLED);
	dns_route_clear(&r);
}

static void test_addrs_interleaved_ipv6_first(void **state)
{
	const struct dns_addr a4[] = {v4("192.0.2.1"), v4("192.0.2.2"), v4("192.0.2.3")};
	const struct dns_addr a6[] = {v6("2001:db8::1")};
	struct dns_route_host h = {0};
	char s[DNS_ADDR_STRLEN];

	dns_route_host_addrs(&h, DNS_OK, a4, 3, DNS_OK, a6, 1);
	assert_int_equal(h.addr_status, DNS_OK);
	assert_int_equal(h.n_addrs, 4);
	assert_string_equal(dns_addr_str(&h.addrs[0], s), "2001:db8::1");
	assert_string_equal(dns_addr_str(&h.addrs[1], s), "192.0.2.1");
	assert_string_equal(dns_addr_str(&h.addrs[2], s), "192.0.2.2");
	assert_string_equal(dns_addr_str(&h.addrs[3], s), "192.0.2.3");
	free(h.addrs);
}

static void test_addrs_capped(void **state)
{
	struct dns_addr a4[DNS_MAX_ADDRS], a6[DNS_MAX_ADDRS];
	struct dns_route_host h = {0};
	size_t i, n4 = 0, n6 = 0;

	for (i = 0; i < DNS_MAX_ADDRS; i++) {
		a4[i] = v4("192.0.2.1");
		a4[i].addr[3] = (unsigned char)i;
		a6[i] = v6("2001:db8::1");
		a6[i].addr[15] = (unsigned char)i;
	}
	dns_route_host_addrs(&h, DNS_OK, a4, DNS_MAX_ADDRS, DNS_OK, a6, DNS_MAX_ADDRS);
	assert_int_equal(h.n_addrs, DNS_MAX_ADDRS);
	for (i = 0; i < h.n_addrs; i++)
		if (h.addrs[i].family == AF_INET)
			n4++;
		else
			n6++;
	assert_int_equal(n4, DNS_MAX_ADDRS / 2); /* both families kept */
	assert_int_equal(n6, DNS_MAX_ADDRS / 2);
	free(h.addrs);
}

static void test_addr_status(void **state)
{
	const struct dns_addr a4[] = {v4("192.0.2.1")};
	struct dns_route_host h = {0};

	/* One family failing does not matter when the other answers. */
	dns_route_host_addrs(&h, DNS_OK, a4, 1, DNS_TEMPFAIL, NULL, 0);
	assert_int_equal(h.addr_status, DNS_OK);
	assert_int_equal(h.n_addrs, 1);
	dns_route_host_addrs(&h, DNS_NODATA, NULL, 0, DNS_TEMPFAIL, NULL, 0);
	assert_int_equal(h.addr_status, DNS_TEMPFAIL);
	assert_int_equal(h.n_addrs, 0);
	dns_route_host_addrs(&h, DNS_NXDOMAIN, NULL, 0, DNS_NXDOMAIN, NULL, 0);
	assert_int_equal(h.addr_status, DNS_NXDOMAIN);
	dns_route_host_addrs(&h, DNS_NODATA, NULL, 0, DNS_NODATA, NULL, 0);
	assert_int_equal(h.addr_status, DNS_NODATA);
	/* A status other than OK voids any addresses passed with it. */
	dns_route_host_addrs(&h, DNS_TEMPFAIL, a4, 1, DNS_NODATA, NULL, 0);
	assert_int_equal(h.n_addrs, 0);
	free(h.addrs);
}

static void plan_two(struct dns_route *r)
{
	const struct dns_mx_rr rr[] = {{"mx1.example", 10}, {"mx2.example", 20}};

	dns_route_plan(r, "example", DNS_OK, rr, 2, rnd_last, NULL);
}

static void test_finish_status(void **state)
{
	const struct dns_addr a4[] = {v4("192.0.2.1")};
	struct dns_route r;

	/* The best host fails, the second has an address: usable. */
	plan_two(&r);
	dns_route_host_addrs(&r.hosts[0], DNS_TEMPFAIL, NULL, 0, DNS_TEMPFAIL, NULL, 0);
	dns_route_host_addrs(&r.hosts[1], DNS_OK, a4, 1, DNS_NODATA, NULL, 0);
	dns_route_finish(&r);
	assert_int_equal(r.status, DNS_OK);
	dns_route_clear(&r);

	/* No address anywhere, one temporary failure: retry later. */
	plan_two(&r);
	dns_route_host_addrs(&r.hosts[0], DNS_NXDOMAIN, NULL, 0, DNS_NXDOMAIN, NULL, 0);
	dns_route_host_addrs(&r.hosts[1], DNS_TEMPFAIL, NULL, 0, DNS_NODATA, NULL, 0);
	dns_route_finish(&r);
	assert_int_equal(r.status, DNS_TEMPFAIL);
	dns_route_clear(&r);

	/* No address anywhere, all answers final: permanent. */
	plan_two(&r);
	dns_route_host_addrs(&r.hosts[0], DNS_NXDOMAIN, NULL, 0, DNS_NXDOMAIN, NULL, 0);
	dns_route_host_addrs(&r.hosts[1], DNS_NODATA, NULL, 0, DNS_NODATA, NULL, 0);
	dns_route_finish(&r);
	assert_int_equal(r.status, DNS_NODATA);
	assert_non_null(strstr(r.error, "address"));
	dns_route_clear(&r);

	/* Implicit MX without addresses. */
	dns_route_plan(&r, "example", DNS_NODATA, NULL, 0, rnd_last, NULL);
	dns_route_host_addrs(&r.hosts[0], DNS_NODATA, NULL, 0, DNS_NODATA, NULL, 0);
	dns_route_finish(&r);
	assert_int_equal(r.status, DNS_NODATA);
	assert_non_null(strstr(r.error, "no MX"));
	dns_route_clear(&r);
}

static void test_dup(void **state)
{
	const struct dns_addr a4[] = {v4("192.0.2.1")};
	struct dns_route r, *c;

	plan_two(&r);
	dns_route_host_addrs(&r.hosts[0], DNS_OK, a4, 1, DNS_NODATA, NULL, 0);
	dns_route_host_addrs(&r.hosts[1], DNS_NODATA, NULL, 0, DNS_NODATA, NULL, 0);
	dns_route_finish(&r);
	c = dns_route_dup(&r);
	dns_route_clear(&r);
	assert_int_equal(c->status, DNS_OK);
	assert_int_equal(c->n_hosts, 2);
	assert_string_equal(c->hosts[0].name, "mx1.example");
	assert_int_equal(c->hosts[0].n_addrs, 1);
	assert_memory_equal(c->hosts[0].addrs[0].addr, a4[0].addr, 4);
	assert_int_equal(c->hosts[1].n_addrs, 0);
	assert_null(c->hosts[1].addrs);
	dns_route_free(c);
	dns_route_free(NULL);
}

static void test_name_canon(void **state)
{
	char out[256], long_label[80], long_name[512];

	assert_int_equal(dns_name_canon("Mail.Example.COM.", out, sizeof out), 0);
	assert_string_equal(out, "mail.example.com");
	assert_int_equal(dns_name_canon("_mta-sts.example.com", out, sizeof out), 0);
	assert_int_equal(dns_name_canon("xn--bcher-kva.example", out, sizeof out), 0);
	assert_int_equal(dns_name_canon("", out, sizeof out), -1);
	assert_int_equal(dns_name_canon(".", out, sizeof out), -1);
	assert_int_equal(dns_name_canon("a..b", out, sizeof out), -1);
	assert_int_equal(dns_name_canon(".a", out, sizeof out), -1);
	assert_int_equal(dns_name_canon("a b", out, sizeof out), -1);
	assert_int_equal(dns_name_canon("a\\.b", out, sizeof out), -1);
	assert_int_equal(dns_name_canon("[192.0.2.1]", out, sizeof out), -1);
	memset(long_label, 'a', 64);
	long_label[64] = '\0';
	assert_int_equal(dns_name_canon(long_label, out, sizeof out), -1);
	long_label[63] = '\0';
	assert_int_equal(dns_name_canon(long_label, out, sizeof out), 0);
	snprintf(long_name, sizeof long_name, "%s.%s.%s.%s", long_label, long_label, long_label,
	         long_label); /* 255 bytes */
	assert_int_equal(dns_name_canon(long_name, out, sizeof out), -1);
	assert_int_equal(dns_name_canon("example.com", out, 5), -1); /* does not fit */
}

static void test_status_names(void **state)
{
	assert_string_equal(dns_status_name(DNS_OK), "ok");
	assert_string_equal(dns_status_name(DNS_NXDOMAIN), "nxdomain");
	assert_string_equal(dns_status_name(DNS_NODATA), "nodata");
	assert_string_equal(dns_status_name(DNS_TEMPFAIL), "tempfail");
	assert_string_equal(dns_status_name(DNS_CANCELLED), "cancelled");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_order_by_preference),
	    cmocka_unit_test(test_equal_preferences_shuffled),
	    cmocka_unit_test(test_shuffle_reaches_all_orders),
	    cmocka_unit_test(test_dedup_keeps_lowest_preference),
	    cmocka_unit_test(test_cap_hosts),
	    cmocka_unit_test(test_null_mx),
	    cmocka_unit_test(test_root_beside_real_mx),
	    cmocka_unit_test(test_unusable_exchange_names),
	    cmocka_unit_test(test_implicit_mx),
	    cmocka_unit_test(test_mx_failures_pass_through),
	    cmocka_unit_test(test_addrs_interleaved_ipv6_first),
	    cmocka_unit_test(test_addrs_capped),
	    cmocka_unit_test(test_addr_status),
	    cmocka_unit_test(test_finish_status),
	    cmocka_unit_test(test_dup),
	    cmocka_unit_test(test_name_canon),
	    cmocka_unit_test(test_status_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
