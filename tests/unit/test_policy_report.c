/*
 * Unit tests for policy/policy_report: the "policy" objects of RFC 8460
 * 4.4 (sts, tlsa, no-policy-found), a report built from the counts of a
 * period (summary and failure-details per policy, the date range, the
 * report-id), its gzip (inflated again here with zlib), and the message
 * of RFC 8460 5.3 that carries it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <zlib.h>

#include "policy/policy_int.h"
#include "store/store.h"
#include "util/util.h"

static struct sts_snap *snap_of(const char *text)
{
	struct sts_snap *s = xcalloc(1, sizeof(*s));
	const char *why;

	assert_int_equal(sts_policy_parse(text, strlen(text), &s->pol, &why), 0);
	s->refs = 1;
	s->text = xstrdup(text);
	return s;
}

static json_t *load(const char *text)
{
	json_error_t e;
	json_t *j = json_loads(text, 0, &e);

	if (!j)
		fail_msg("bad JSON (%s): %s", e.text, text);
	return j;
}

static void test_policy_objects(void **state)
{
	struct sts_snap *snap = snap_of("version: STSv1\r\nmode: enforce\r\nmx: *.a.test\r\n"
	                                "max_age: 60\r\n");
	unsigned char d[2] = {0xab, 0x01};
	struct tls_tlsa t = {3, 1, 1, 2, d};
	struct tls_host_pol h = {.host = "mx.a.test", .pol = TLS_POL_DANE, .tlsa = &t, .n_tlsa = 1};
	char *text;
	json_t *j;

	text = rpt_policy_json("a.test", snap, NULL);
	j = load(text);
	assert_string_equal(json_string_value(json_object_get(j, "policy-type")), "sts");
	assert_string_equal(json_string_value(json_object_get(j, "policy-domain")), "a.test");
	assert_int_equal(json_array_size(json_object_get(j, "policy-string")), 4);
	assert_string_equal(
	    json_string_value(json_array_get(json_object_get(j, "policy-string"), 1)),
	    "mode: enforce");
	assert_string_equal(json_string_value(json_array_get(json_object_get(j, "mx-host"), 0)),
	                    "*.a.test");
	json_decref(j);
	free(text);
	text = rpt_policy_json("a.test", snap, &h); /* DANE wins */
	j = load(text);
	assert_string_equal(json_string_value(json_object_get(j, "policy-type")), "tlsa");
	assert_string_equal(
	    json_string_value(json_array_get(json_object_get(j, "policy-string"), 0)),
	    "3 1 1 AB01");
	assert_string_equal(json_string_value(json_array_get(json_object_get(j, "mx-host"), 0)),
	                    "mx.a.test");
	json_decref(j);
	free(text);
	text = rpt_policy_json("a.test", NULL, NULL);
	assert_string_equal(text,
	                    "{\"policy-domain\":\"a.test\",\"policy-type\":\"no-policy-found\"}");
	free(text);
	text = rpt_policy_json_sts_failed("a.test");
	assert_string_equal(text, "{\"policy-domain\":\"a.test\",\"policy-string\":[],"
	                          "\"policy-type\":\"sts\"}");
	free(text);
	sts_snap_unref(snap);
}

#define POL_A "{\"policy-domain\":\"a.test\",\"policy-type\":\"sts\"}"
#define POL_B "{\"policy-domain\":\"a.test\",\"policy-type\":\"no-policy-found\"}"

static struct store_tlsrpt_row row(const char *policy, const char *result, const char *ip,
                                   uint64_t n)
{
	struct store_tlsrpt_row r = {"a.test",
	                             (char *)policy,
	                             (char *)result,
	                             "192.0.2.1",
	                             (char *)(result[0] ? "mx.a.test" : ""),
	                             (char *)ip,
	                             86400,
	                             2 * 86400,
	                             n};
	return r;
}

static char *gunzip(const unsigned char *p, size_t n)
{
	z_stream z;
	char *out = xcalloc(1, 1 << 20);

	memset(&z, 0, sizeof(z));
	assert_int_equal(inflateInit2(&z, 15 + 16), Z_OK);
	z.next_in = (unsigned char *)p;
	z.avail_in = (uInt)n;
	z.next_out = (unsigned char *)out;
	z.avail_out = (1 << 20) - 1;
	assert_int_equal(inflate(&z, Z_FINISH), Z_STREAM_END);
	inflateEnd(&z);
	return out;
}

static void check_report(json_t *j)
{
	json_t *pols = json_object_get(j, "policies"), *a, *d;

	assert_string_equal(json_string_value(json_object_get(j, "organization-name")),
	                    "relay.test");
	assert_string_equal(json_string_value(json_object_get(j, "report-id")),
	                    "86400.a.test@relay.test");
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(j, "date-range"), "start-datetime")),
	    "1970-01-02T00:00:00Z");
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(j, "date-range"), "end-datetime")),
	    "1970-01-02T23:59:59Z");
	assert_int_equal(json_array_size(pols), 2); /* grouped by policy text */
	a = json_array_get(pols, 0);
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(a, "policy"), "policy-type")), "sts");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(a, "summary"),
	                                                    "total-successful-session-count")),
	                 5);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(a, "summary"),
	                                                    "total-failure-session-count")),
	                 3);
	d = json_array_get(json_object_get(a, "failure-details"), 0);
	assert_string_equal(json_string_value(json_object_get(d, "result-type")),
	                    "certificate-expired");
	assert_string_equal(json_string_value(json_object_get(d, "receiving-mx-hostname")),
	                    "mx.a.test");
	assert_string_equal(json_string_value(json_object_get(d, "receiving-ip")), "192.0.2.9");
	assert_int_equal(json_integer_value(json_object_get(d, "failed-session-count")), 2);
	/* a policy with successes only has no failure-details */
	assert_null(json_object_get(json_array_get(pols, 1), "failure-details"));
}

static void test_report(void **state)
{
	struct store_tlsrpt_row rows[] = {
	    row(POL_A, "", "", 5),
	    row(POL_A, "certificate-expired", "192.0.2.9", 2),
	    row(POL_A, "starttls-not-supported", "192.0.2.8", 1),
	    row(POL_B, "", "", 7),
	};
	struct rpt_report r;
	char *err = NULL, *json, *mail;
	json_t *j;
	size_t len;

	assert_int_equal(rpt_report_build("relay.test", rows, 4, &r, &err), 0);
	assert_string_equal(r.filename, "relay.test!a.test!86400!172799!86400.json.gz");
	json = gunzip(r.gz, r.gz_len);
	assert_string_equal(json, r.json);
	j = load(json);
	check_report(j);
	json_decref(j);
	free(json);
	mail = rpt_report_mail("relay.test", "a.test", "rua@b.test", &r, 86400, &len);
	assert_int_equal(strlen(mail), len);
	assert_non_null(strstr(mail, "Subject: Report Domain: a.test Submitter: relay.test "
	                             "Report-ID: <86400.a.test@relay.test>\r\n"));
	assert_non_null(strstr(mail, "\r\nTLS-Report-Domain: a.test\r\n"));
	assert_non_null(strstr(mail, "\r\nTLS-Report-Submitter: relay.test\r\n"));
	assert_non_null(strstr(mail, "\r\nTLS-Required: No\r\n"));
	assert_non_null(strstr(mail, "multipart/report; report-type=\"tlsrpt\""));
	assert_non_null(strstr(mail, "Content-Type: application/tlsrpt+gzip\r\n"));
	assert_non_null(strstr(mail, "filename=\"relay.test!a.test!86400!172799!86400.json.gz\""));
	for (size_t i = 0; i < len; i++) /* CRLF lines only */
		if (mail[i] == '\n')
			assert_true(i > 0 && mail[i - 1] == '\r');
	free(mail);
	rpt_report_clear(&r);
	assert_int_equal(rpt_report_build("relay.test", rows, 0, &r, &err), -1);
	assert_string_equal(err, "no counts");
	free(err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_policy_objects),
	    cmocka_unit_test(test_report),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
