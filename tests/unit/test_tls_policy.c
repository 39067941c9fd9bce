/*
 * Unit tests for tls/tls_policy (PURE): what each combination of MTA-STS,
 * DANE, REQUIRETLS and TLS-Required: No asks of one MX host (the
 * precedence of tls_policy.h), which TLSA records are usable for SMTP,
 * the TLS-RPT result names, and the destination policy's host lookup.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tls/tls_policy.h"
#include "util/util.h"

static unsigned char d32[32], d64[64];

static struct tls_decide_in in_of(int sts_mode, enum tls_dane dane)
{
	struct tls_decide_in in = {"example.com", "mx.example.com", 0, 0, 0, sts_mode, dane};
	return in;
}

static struct tls_host_pol decide(const struct tls_decide_in *in, int allowed)
{
	struct tls_tlsa t[2] = {{3, 1, 1, 32, d32}, {1, 1, 1, 32, d32}};
	struct tls_host_pol h;

	tls_host_decide(in, allowed, t, 2, &h);
	assert_string_equal(h.host, "mx.example.com");
	return h;
}

static void test_none(void **state)
{
	struct tls_decide_in in = in_of(-1, TLS_DANE_NONE);
	struct tls_host_pol h = decide(&in, 0);

	assert_int_equal(h.pol, TLS_POL_NONE);
	assert_false(h.refuse || h.tls_required || h.verify_required || h.testing);
	tls_host_pol_clear(&h);
	in.outbound_required = 1; /* [relay] outbound_tls = required */
	h = decide(&in, 0);
	assert_true(h.tls_required);
	assert_false(h.verify_required);
	tls_host_pol_clear(&h);
	in = in_of(0, TLS_DANE_NONE); /* MTA-STS mode none: nothing */
	h = decide(&in, 0);
	assert_int_equal(h.pol, TLS_POL_NONE);
	tls_host_pol_clear(&h);
}

static void test_sts(void **state)
{
	struct tls_decide_in in = in_of(2, TLS_DANE_NONE);
	struct tls_host_pol h = decide(&in, 1);

	assert_int_equal(h.pol, TLS_POL_STS);
	assert_true(h.tls_required && h.verify_required);
	assert_false(h.refuse || h.testing);
	tls_host_pol_clear(&h);
	h = decide(&in, 0); /* outside the policy */
	assert_true(h.refuse);
	assert_int_equal(h.refuse_result, TLSRPT_VALIDATION_FAILURE);
	assert_string_equal(h.why, "MX host mx.example.com does not match the MTA-STS policy of "
	                           "example.com (enforce)");
	tls_host_pol_clear(&h);
	in.sts_mode = 1; /* testing: reported, never enforced */
	h = decide(&in, 0);
	assert_int_equal(h.pol, TLS_POL_STS);
	assert_true(h.testing);
	assert_false(h.refuse || h.tls_required || h.verify_required);
	tls_host_pol_clear(&h);
}

static void test_dane(void **state)
{
	struct tls_decide_in in = in_of(2, TLS_DANE_USABLE);
	struct tls_host_pol h = decide(&in, 0);

	/* DANE wins over MTA-STS (RFC 8461 2): not refused for the mx list */
	assert_int_equal(h.pol, TLS_POL_DANE);
	assert_false(h.refuse);
	assert_true(h.tls_required && h.verify_required);
	assert_int_equal(h.n_tlsa, 1); /* the PKIX-EE record is not copied */
	assert_int_equal(h.tlsa[0].usage, 3);
	assert_ptr_not_equal(h.tlsa[0].data, d32);
	tls_host_pol_clear(&h);
	/* records, none usable: they do not set MTA-STS enforce aside */
	in.dane = TLS_DANE_UNUSABLE;
	h = decide(&in, 0);
	assert_int_equal(h.pol, TLS_POL_STS);
	assert_true(h.refuse && h.tls_required && h.verify_required);
	tls_host_pol_clear(&h);
	h = decide(&in, 1);
	assert_int_equal(h.pol, TLS_POL_STS);
	assert_false(h.refuse);
	assert_true(h.tls_required && h.verify_required);
	tls_host_pol_clear(&h);
	in.sts_mode = 1; /* testing, or no policy: TLS, not authenticated */
	for (int k = 0; k < 2; k++, in.sts_mode = -1) {
		h = decide(&in, 0);
		assert_int_equal(h.pol, TLS_POL_DANE);
		assert_true(h.tls_required);
		assert_false(h.verify_required || h.refuse || h.testing);
		assert_int_equal(h.n_tlsa, 0);
		tls_host_pol_clear(&h);
	}
	in.sts_mode = 2;
	in.dane = TLS_DANE_FAILED;
	h = decide(&in, 1);
	assert_true(h.refuse);
	assert_int_equal(h.refuse_result, TLSRPT_DNSSEC_INVALID);
	assert_string_equal(h.why, "DANE: the TLSA lookup for _25._tcp.mx.example.com failed");
	tls_host_pol_clear(&h);
}

static void test_requiretls_and_optout(void **state)
{
	struct tls_decide_in in = in_of(-1, TLS_DANE_NONE);
	struct tls_host_pol h;

	in.requiretls = 1;
	h = decide(&in, 0);
	assert_int_equal(h.pol, TLS_POL_REQUIRETLS);
	assert_true(h.requiretls && h.tls_required && h.verify_required);
	tls_host_pol_clear(&h);
	in.sts_mode = 1; /* testing mode does not soften REQUIRETLS */
	h = decide(&in, 1);
	assert_int_equal(h.pol, TLS_POL_REQUIRETLS);
	assert_false(h.testing);
	assert_true(h.verify_required);
	tls_host_pol_clear(&h);
	in.sts_mode = 2;
	h = decide(&in, 1);
	assert_int_equal(h.pol, TLS_POL_STS);
	assert_true(h.requiretls);
	tls_host_pol_clear(&h);
	/* TLS-Required: No waives every policy, but not REQUIRETLS */
	in.optout = 1;
	h = decide(&in, 0);
	assert_true(h.refuse);
	tls_host_pol_clear(&h);
	in.requiretls = 0;
	in.dane = TLS_DANE_FAILED;
	h = decide(&in, 0);
	assert_int_equal(h.pol, TLS_POL_NONE);
	assert_false(h.refuse || h.tls_required || h.verify_required || h.requiretls);
	tls_host_pol_clear(&h);
}

static void test_tlsa_usable(void **state)
{
	struct tls_tlsa t = {3, 1, 1, 32, d32};

	assert_true(tls_tlsa_usable(&t));
	t.usage = 2;
	assert_true(tls_tlsa_usable(&t));
	t.usage = 0;
	assert_false(tls_tlsa_usable(&t));
	t.usage = 1;
	assert_false(tls_tlsa_usable(&t));
	t = (struct tls_tlsa){3, 0, 2, 64, d64};
	assert_true(tls_tlsa_usable(&t));
	t.len = 32; /* SHA-512 of the wrong length */
	assert_false(tls_tlsa_usable(&t));
	t = (struct tls_tlsa){3, 2, 1, 32, d32};
	assert_false(tls_tlsa_usable(&t));
	t = (struct tls_tlsa){3, 1, 0, 5, d32}; /* full data, any length */
	assert_true(tls_tlsa_usable(&t));
	t.len = 0;
	assert_false(tls_tlsa_usable(&t));
}

static void test_names(void **state)
{
	assert_string_equal(tls_pol_name(TLS_POL_NONE), "none");
	assert_string_equal(tls_pol_name(TLS_POL_STS), "mta-sts");
	assert_string_equal(tls_pol_name(TLS_POL_DANE), "dane");
	assert_string_equal(tls_pol_name(TLS_POL_REQUIRETLS), "requiretls");
	for (int i = 0; i < TLSRPT__COUNT; i++)
		assert_int_equal(tlsrpt_result_parse(tlsrpt_result_name(i)), i);
	assert_string_equal(tlsrpt_result_name(TLSRPT_STARTTLS_NOT_SUPPORTED),
	                    "starttls-not-supported");
	assert_string_equal(tlsrpt_result_name(TLSRPT_STS_WEBPKI_INVALID), "sts-webpki-invalid");
	assert_int_equal(tlsrpt_result_parse("no-such-result"), -1);
}

static void test_dest_pol(void **state)
{
	struct tls_dest_pol *p = tls_dest_pol_new("example.com", 2);

	p->hosts[0].host = xstrdup("a.example.com");
	p->hosts[1].host = xstrdup("b.example.com");
	assert_ptr_equal(tls_dest_pol_host(p, 1, "B.example.com"), &p->hosts[1]);
	assert_ptr_equal(tls_dest_pol_host(p, 0, "b.example.com"), &p->hosts[1]); /* a bad hint */
	assert_null(tls_dest_pol_host(p, 0, "c.example.com"));
	assert_null(tls_dest_pol_host(NULL, 0, "a.example.com"));
	assert_ptr_equal(tls_dest_pol_ref(p), p);
	tls_dest_pol_unref(p);
	assert_int_equal(p->refs, 1);
	tls_dest_pol_unref(p);
	tls_dest_pol_unref(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_none),        cmocka_unit_test(test_sts),
	    cmocka_unit_test(test_dane),        cmocka_unit_test(test_requiretls_and_optout),
	    cmocka_unit_test(test_tlsa_usable), cmocka_unit_test(test_names),
	    cmocka_unit_test(test_dest_pol),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
