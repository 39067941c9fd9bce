/*
 * Unit tests for policy/policy_parse (PURE): the _mta-sts TXT record
 * (RFC 8461 3.1), the MTA-STS policy body (3.2) and mx patterns (4.1), the
 * _smtp._tls TXT record (RFC 8460 3), and the TLS-Required header
 * (RFC 8689 5). Each refusal the RFCs ask for has a case.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "policy/policy_parse.h"
#include "util/util.h"

/* ---------- _mta-sts TXT ---------- */

static int pick1(const char *rec, char *id)
{
	const char *v[] = {rec};
	return sts_txt_pick(v, 1, id);
}

static void test_sts_txt(void **state)
{
	char id[STS_ID_MAX + 1];

	assert_int_equal(pick1("v=STSv1; id=20160831085700Z;", id), 1);
	assert_string_equal(id, "20160831085700Z");
	assert_int_equal(pick1("v=STSv1;id=abc", id), 1);
	assert_string_equal(id, "abc");
	assert_int_equal(pick1("v=STSv1 ;  id=x1 ; ext_1-a.b=val  ;", id), 1);
	assert_string_equal(id, "x1");
	/* no id, a bad id, two ids, a bad extension, an empty inner field */
	assert_int_equal(pick1("v=STSv1;", id), 0);
	assert_int_equal(pick1("v=STSv1; id=", id), 0);
	assert_int_equal(pick1("v=STSv1; id=has-dash", id), 0);
	assert_int_equal(pick1("v=STSv1; id=0123456789012345678901234567890123", id), 0);
	assert_int_equal(pick1("v=STSv1; id=a; id=b", id), 0);
	assert_int_equal(pick1("v=STSv1; id=a; =x", id), 0);
	assert_int_equal(pick1("v=STSv1; id=a; x=", id), 0);
	assert_int_equal(pick1("v=STSv1;; id=a", id), 0);
	/* another version, or the version not first */
	assert_int_equal(pick1("v=STSv2; id=a", id), 0);
	assert_int_equal(pick1("id=a; v=STSv1", id), 0);
	assert_int_equal(pick1("", id), 0);
}

static void test_sts_txt_several(void **state)
{
	const char *two[] = {"v=STSv1; id=a", "v=STSv1; id=b"};
	const char *other[] = {"v=spf1 -all", "v=STSv1; id=only", "hello"};
	char id[STS_ID_MAX + 1];

	/* RFC 8461 3.1: records not starting v=STSv1 are ignored, but more
	 * than one that does means no policy */
	assert_int_equal(sts_txt_pick(two, 2, id), 0);
	assert_int_equal(sts_txt_pick(other, 3, id), 1);
	assert_string_equal(id, "only");
	assert_int_equal(sts_txt_pick(other, 0, id), 0);
}

/* ---------- the policy body ---------- */

static void parse_ok(const char *text, struct sts_policy *p)
{
	const char *why = "unset";

	if (sts_policy_parse(text, strlen(text), p, &why) != 0)
		fail_msg("refused: %s", why);
	assert_null(why);
}

static void parse_bad(const char *text, const char *want_why)
{
	struct sts_policy p;
	const char *why = NULL;

	assert_int_equal(sts_policy_parse(text, strlen(text), &p, &why), -1);
	assert_non_null(why);
	assert_non_null(strstr(why, want_why));
	assert_int_equal(p.n_mx, 0);
}

static void test_policy_ok(void **state)
{
	struct sts_policy p;

	parse_ok("version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\n"
	         "mx: *.Example.NET\r\nmx: backupmx.example.com\r\nmax_age: 604800\r\n",
	         &p);
	assert_int_equal(p.mode, STS_MODE_ENFORCE);
	assert_int_equal(p.max_age, 604800);
	assert_int_equal(p.n_mx, 3);
	assert_string_equal(p.mx[1], "*.example.net"); /* kept lower case */
	sts_policy_clear(&p);
	/* LF lines, no final newline, blank lines and unknown keys are fine;
	 * the first of a key given twice counts */
	parse_ok("version:STSv1\nmode:testing\n\nfoo: bar\nmx: a.b\nmax_age:0\nmode: none", &p);
	assert_int_equal(p.mode, STS_MODE_TESTING);
	assert_int_equal(p.max_age, 0);
	sts_policy_clear(&p);
	parse_ok("version: STSv1\nmode: none\nmax_age: 31557600\n", &p);
	assert_int_equal(p.mode, STS_MODE_NONE);
	assert_int_equal(p.n_mx, 0);
	assert_string_equal(sts_mode_name(p.mode), "none");
	sts_policy_clear(&p);
}

static void test_policy_bad(void **state)
{
	parse_bad("mode: enforce\nmx: a.b\nmax_age: 1\n", "missing");
	parse_bad("version: STSv2\nmode: enforce\nmx: a.b\nmax_age: 1\n", "version");
	parse_bad("version: STSv1\nmode: strict\nmx: a.b\nmax_age: 1\n", "mode");
	parse_bad("version: STSv1\nmode: enforce\nmx: a.b\nmax_age: 31557601\n", "max_age");
	parse_bad("version: STSv1\nmode: enforce\nmx: a.b\nmax_age: -1\n", "max_age");
	parse_bad("version: STSv1\nmode: enforce\nmx: a.b\nmax_age: 12345678901\n", "max_age");
	parse_bad("version: STSv1\nmode: enforce\nmax_age: 1\n", "no mx");
	parse_bad("version: STSv1\nmode: enforce\nmx: a..b\nmax_age: 1\n", "mx value");
	parse_bad("version: STSv1\nmode: enforce\nmx: *.\nmax_age: 1\n", "mx value");
	parse_bad("version: STSv1\nmode: enforce\nmx: a b\nmax_age: 1\n", "mx value");
	parse_bad("version: STSv1\nmode enforce\nmx: a.b\nmax_age: 1\n", "without ':'");
}

static void test_policy_bounds(void **state)
{
	struct sts_policy p;
	struct buf b;
	const char *why;
	char nul[] = "version: STSv1\nmode: none\nmax_age: 1\nx: a\0b\n";

	/* more mx lines than are kept: the first STS_MX_MAX */
	buf_init(&b);
	buf_puts(&b, "version: STSv1\nmode: enforce\nmax_age: 5\n");
	for (int i = 0; i < STS_MX_MAX + 10; i++)
		buf_printf(&b, "mx: mx%d.example.com\n", i);
	parse_ok(b.data, &p);
	assert_int_equal(p.n_mx, STS_MX_MAX);
	assert_string_equal(p.mx[0], "mx0.example.com");
	sts_policy_clear(&p);
	/* over 64 KiB is refused, not cut */
	while (b.len <= STS_POLICY_MAX)
		buf_puts(&b, "# padding padding padding padding padding padding\n");
	assert_int_equal(sts_policy_parse(b.data, b.len, &p, &why), -1);
	assert_non_null(strstr(why, "64 KiB"));
	buf_free(&b);
	assert_int_equal(sts_policy_parse(nul, sizeof(nul) - 1, &p, &why), -1);
	assert_non_null(strstr(why, "NUL"));
}

static void test_mx_match(void **state)
{
	struct sts_policy p;

	assert_true(sts_mx_match("mail.example.com", "MAIL.example.com"));
	assert_false(sts_mx_match("mail.example.com", "mail.example.co"));
	assert_true(sts_mx_match("*.example.com", "mx1.example.com"));
	assert_false(sts_mx_match("*.example.com", "a.b.example.com")); /* one label only */
	assert_false(sts_mx_match("*.example.com", "example.com"));
	assert_false(sts_mx_match("*.example.com", ".example.com"));
	parse_ok("version: STSv1\nmode: enforce\nmx: a.test\nmx: *.b.test\nmax_age: 1\n", &p);
	assert_true(sts_policy_allows(&p, "a.test"));
	assert_true(sts_policy_allows(&p, "x.b.test"));
	assert_false(sts_policy_allows(&p, "c.test"));
	sts_policy_clear(&p);
}

/* ---------- _smtp._tls TXT ---------- */

static int rpt1(const char *rec, struct tlsrpt_record *r)
{
	const char *v[] = {rec};
	return tlsrpt_txt_pick(v, 1, r);
}

static void test_tlsrpt_txt(void **state)
{
	struct tlsrpt_record r;

	assert_int_equal(rpt1("v=TLSRPTv1; rua=mailto:reports@example.com", &r), 1);
	assert_int_equal(r.n_rua, 1);
	assert_int_equal(r.rua[0].kind, TLSRPT_RUA_MAILTO);
	assert_string_equal(r.rua[0].addr, "reports@example.com");
	assert_int_equal(rpt1("v=TLSRPTv1;rua=mailto:a@x.test?subject=x , "
	                      "https://r.example/v1/tlsrpt;",
	                      &r),
	                 1);
	assert_int_equal(r.n_rua, 2);
	assert_string_equal(r.rua[0].addr, "a@x.test"); /* the query part dropped */
	assert_string_equal(r.rua[0].uri, "mailto:a@x.test?subject=x");
	assert_int_equal(r.rua[1].kind, TLSRPT_RUA_HTTPS);
	assert_string_equal(r.rua[1].uri, "https://r.example/v1/tlsrpt");
	/* unusable addresses are left out; none left: no reports */
	assert_int_equal(rpt1("v=TLSRPTv1; rua=http://plain.example/,ftp://x,mailto:bad", &r), 0);
	assert_int_equal(rpt1("v=TLSRPTv1; rua=mailto:@x,https://ok.example/", &r), 1);
	assert_int_equal(r.n_rua, 1);
	/* no rua, two rua fields, another version, a bad extension */
	assert_int_equal(rpt1("v=TLSRPTv1;", &r), 0);
	assert_int_equal(rpt1("v=TLSRPTv1; rua=mailto:a@b; rua=mailto:c@d", &r), 0);
	assert_int_equal(rpt1("v=TLSRPTv2; rua=mailto:a@b", &r), 0);
	assert_int_equal(rpt1("v=TLSRPTv1; rua=mailto:a@b; bad", &r), 0);
}

static void test_tlsrpt_bounds(void **state)
{
	const char *two[] = {"v=TLSRPTv1; rua=mailto:a@b", "v=TLSRPTv1; rua=mailto:c@d"};
	struct tlsrpt_record r;
	struct buf b;

	assert_int_equal(tlsrpt_txt_pick(two, 2, &r), 0);
	buf_init(&b);
	buf_puts(&b, "v=TLSRPTv1; rua=");
	for (int i = 0; i < TLSRPT_RUA_MAX + 5; i++)
		buf_printf(&b, "%smailto:r%d@x.test", i ? "," : "", i);
	assert_int_equal(rpt1(b.data, &r), 1);
	assert_int_equal(r.n_rua, TLSRPT_RUA_MAX);
	buf_reset(&b);
	buf_puts(&b, "v=TLSRPTv1; rua=https://x.test/");
	for (int i = 0; i < TLSRPT_RUA_LEN; i++)
		buf_puts(&b, "a");
	assert_int_equal(rpt1(b.data, &r), 0); /* too long to keep */
	buf_free(&b);
}

/* ---------- TLS-Required ---------- */

static int no(const char *h)
{
	return tls_required_no(h, strlen(h));
}

static void test_tls_required(void **state)
{
	assert_true(no("From: a@b\r\nTLS-Required: No\r\nSubject: x\r\n\r\nbody"));
	assert_true(no("tls-required:no\r\n\r\n"));
	assert_true(no("TLS-Required :\r\n No \r\n\r\n")); /* folded */
	assert_true(no("TLS-Required: No"));               /* the scan may end inside the headers */
	assert_false(no("TLS-Required: Yes\r\n\r\n"));
	assert_false(no("TLS-Required: Nope\r\n\r\n"));
	assert_false(no("TLS-Required: No No\r\n\r\n"));
	assert_false(no("TLS-Required:\r\n\r\n"));
	assert_false(no("X-TLS-Required: No\r\n\r\n"));
	assert_false(no("TLS-Requiredness: No\r\n\r\n"));
	/* only in the header section */
	assert_false(no("From: a@b\r\n\r\nTLS-Required: No\r\n"));
	assert_false(no("\r\nTLS-Required: No\r\n"));
	assert_false(no(""));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sts_txt),       cmocka_unit_test(test_sts_txt_several),
	    cmocka_unit_test(test_policy_ok),     cmocka_unit_test(test_policy_bad),
	    cmocka_unit_test(test_policy_bounds), cmocka_unit_test(test_mx_match),
	    cmocka_unit_test(test_tlsrpt_txt),    cmocka_unit_test(test_tlsrpt_bounds),
	    cmocka_unit_test(test_tls_required),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
