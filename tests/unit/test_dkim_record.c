/*
 * Unit tests for dkim/dkim_record (PURE): record text, the zone-file line
 * and its 255-octet strings, and published records compared with a key
 * (tag-list syntax, key type, revoked, other keys, several records).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dkim/dkim_record.h"
#include "util/util.h"

#define KEY "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAtest+key/AB=="

static void test_text_and_name(void **state)
{
	char *t = dkim_record_text(DKIM_ALGO_RSA2048, "abc");
	char *n = dkim_record_name("ph202611", "example.com");

	assert_string_equal(t, "v=DKIM1; k=rsa; p=abc");
	assert_string_equal(n, "ph202611._domainkey.example.com");
	free(t);
	free(n);
	t = dkim_record_text(DKIM_ALGO_ED25519, "xyz=");
	assert_string_equal(t, "v=DKIM1; k=ed25519; p=xyz=");
	free(t);
}

/* Every quoted string of a zone line, joined; checks each is <= 255. */
static char *zone_strings(const char *line, size_t *count)
{
	struct buf b;
	const char *p = strchr(line, '"');

	buf_init(&b);
	buf_puts(&b, "");
	*count = 0;
	while (p) {
		const char *q = strchr(p + 1, '"');
		assert_non_null(q);
		assert_true(q - p - 1 <= DKIM_TXT_STRING_MAX);
		buf_append(&b, p + 1, (size_t)(q - p - 1));
		(*count)++;
		p = strchr(q + 1, '"');
	}
	return b.data;
}

static void test_zone_line_split(void **state)
{
	size_t lens[] = {1, 254, 255, 256, 410, 510, 511, 1000};

	for (size_t i = 0; i < ARRAY_LEN(lens); i++) {
		char *text = xmalloc(lens[i] + 1), *line, *joined;
		size_t count;

		for (size_t k = 0; k < lens[i]; k++)
			text[k] = (char)('A' + k % 26);
		text[lens[i]] = '\0';
		line = dkim_record_zone_line("s1", "example.com", text);
		assert_true(strncmp(line, "s1._domainkey.example.com. IN TXT \"", 35) == 0);
		assert_null(strchr(line, '\n'));
		joined = zone_strings(line, &count);
		assert_string_equal(joined, text);
		assert_int_equal(count, (lens[i] + 254) / 255);
		free(joined);
		free(line);
		free(text);
	}
}

/* ---- comparing -------------------------------------------------------------------------- */

static enum dkim_verdict cmp1(const char *txt, enum dkim_algo a, const char **why)
{
	return dkim_record_compare(&txt, 1, a, KEY, why);
}

static const struct cmp_case {
	const char *txt;
	enum dkim_algo algo;
	enum dkim_verdict want;
	const char *why;
} cmp_cases[] = {
    {"v=DKIM1; k=rsa; p=" KEY, DKIM_ALGO_RSA2048, DKIM_VERDICT_MATCH, NULL},
    {"v=DKIM1; p=" KEY, DKIM_ALGO_RSA2048, DKIM_VERDICT_MATCH, NULL}, /* k= defaults to rsa */
    {"p=" KEY, DKIM_ALGO_RSA2048, DKIM_VERDICT_MATCH, NULL},
    {"v=DKIM1;k=rsa;p=" KEY ";", DKIM_ALGO_RSA2048, DKIM_VERDICT_MATCH, NULL},
    {" v = DKIM1 ; k = rsa ; t = s ; p = MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A "
     "MIIBCgKCAQEAtest+key/AB== ",
     DKIM_ALGO_RSA2048, DKIM_VERDICT_MATCH, NULL},
    {"v=DKIM1; k=ed25519; p=" KEY, DKIM_ALGO_ED25519, DKIM_VERDICT_MATCH, NULL},
    {"v=DKIM1; k=ed25519; p=" KEY, DKIM_ALGO_RSA2048, DKIM_VERDICT_DIFFERENT, "wrong key type"},
    {"v=DKIM1; p=" KEY, DKIM_ALGO_ED25519, DKIM_VERDICT_DIFFERENT, "wrong key type"},
    {"v=DKIM1; k=rsa; p=", DKIM_ALGO_RSA2048, DKIM_VERDICT_DIFFERENT, "revoked (empty p=)"},
    {"v=DKIM1; k=rsa; p=MIIother", DKIM_ALGO_RSA2048, DKIM_VERDICT_DIFFERENT, "another public key"},
    {"v=DKIM1; k=rsa; p=" KEY "X", DKIM_ALGO_RSA2048, DKIM_VERDICT_DIFFERENT, "another public key"},
    {"v=DKIM1; k=rsa", DKIM_ALGO_RSA2048, DKIM_VERDICT_DIFFERENT, "malformed record"},
    {"v=DKIM1; k=rsa; p=" KEY "; p=x", DKIM_ALGO_RSA2048, DKIM_VERDICT_DIFFERENT,
     "malformed record"},
    {"v=DKIM1;; p=" KEY, DKIM_ALGO_RSA2048, DKIM_VERDICT_DIFFERENT, "malformed record"},
    {"v=DKIM1; 1k=rsa; p=" KEY, DKIM_ALGO_RSA2048, DKIM_VERDICT_DIFFERENT, "malformed record"},
    {"v=DKIM1; k=rsa; p=\x01" KEY, DKIM_ALGO_RSA2048, DKIM_VERDICT_DIFFERENT, "malformed record"},
    /* not key records: ignored */
    {"v=spf1 -all", DKIM_ALGO_RSA2048, DKIM_VERDICT_MISSING, NULL},
    {"k=rsa; p=" KEY "; v=DKIM1", DKIM_ALGO_RSA2048, DKIM_VERDICT_MISSING, NULL}, /* v= not first */
    {"v=DKIM2; p=" KEY, DKIM_ALGO_RSA2048, DKIM_VERDICT_MISSING, NULL},
    {"some note", DKIM_ALGO_RSA2048, DKIM_VERDICT_MISSING, NULL},
    {"", DKIM_ALGO_RSA2048, DKIM_VERDICT_MISSING, NULL},
};

static void test_compare_one(void **state)
{
	for (size_t i = 0; i < ARRAY_LEN(cmp_cases); i++) {
		const struct cmp_case *c = &cmp_cases[i];
		const char *why = "unset";
		enum dkim_verdict v = cmp1(c->txt, c->algo, &why);

		if (v != c->want)
			fail_msg("case %zu '%s': got %s, want %s", i, c->txt, dkim_verdict_name(v),
			         dkim_verdict_name(c->want));
		if (c->why)
			assert_string_equal(why, c->why);
		else
			assert_null(why);
	}
}

static void test_compare_several(void **state)
{
	const char *same[] = {"v=spf1 -all", "v=DKIM1; p=" KEY, "v=DKIM1; k=rsa; p=" KEY};
	const char *mixed[] = {"v=DKIM1; p=" KEY, "v=DKIM1; p=MIIold"};
	const char *why = "unset";

	assert_int_equal(dkim_record_compare(same, 3, DKIM_ALGO_RSA2048, KEY, &why),
	                 DKIM_VERDICT_MATCH);
	assert_null(why);
	/* one record of two is another key: verifiers may pick either */
	assert_int_equal(dkim_record_compare(mixed, 2, DKIM_ALGO_RSA2048, KEY, &why),
	                 DKIM_VERDICT_DIFFERENT);
	assert_string_equal(why, "another public key");
	assert_int_equal(dkim_record_compare(NULL, 0, DKIM_ALGO_RSA2048, KEY, &why),
	                 DKIM_VERDICT_MISSING);
	assert_string_equal(dkim_verdict_name(DKIM_VERDICT_MATCH), "match");
	assert_string_equal(dkim_verdict_name(DKIM_VERDICT_MISSING), "missing");
	assert_string_equal(dkim_verdict_name(DKIM_VERDICT_DIFFERENT), "different");
}

static void test_compare_many_tags(void **state)
{
	struct buf b;
	const char *why, *txt;

	/* more tags than are kept: malformed, not a crash */
	buf_init(&b);
	buf_puts(&b, "v=DKIM1");
	for (int i = 0; i < 40; i++)
		buf_printf(&b, "; x%d=y", i);
	buf_printf(&b, "; p=%s", KEY);
	txt = b.data;
	assert_int_equal(dkim_record_compare(&txt, 1, DKIM_ALGO_RSA2048, KEY, &why),
	                 DKIM_VERDICT_DIFFERENT);
	buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_text_and_name),     cmocka_unit_test(test_zone_line_split),
	    cmocka_unit_test(test_compare_one),       cmocka_unit_test(test_compare_several),
	    cmocka_unit_test(test_compare_many_tags),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
