/*
 * libFuzzer target for policy/policy_parse and tls/tls_policy: the input
 * is what a domain publishes (an MTA-STS policy body, a _mta-sts or
 * _smtp._tls TXT record) or a sender writes (a message's header section).
 * It is copied to a heap block of its exact size, so AddressSanitizer
 * catches a read one byte too far; the TXT readers get it as a C string
 * (records holding a NUL are dropped before them, as dns_answer.c does).
 *
 * Beyond "no crash" it checks the promises of policy_parse.h: a parsed
 * policy has a known mode, max_age within a year, at most STS_MX_MAX
 * lower-case patterns each matching itself (a "*." one matches a name one
 * label longer); an id is 1-32 letters and digits; a report record keeps
 * at most TLSRPT_RUA_MAX addresses, mailto: ones with one '@'; and each
 * decision tls_host_decide() makes from the parsed policy is consistent.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy_parse.h"
#include "tls/tls_policy.h"
#include "util/util.h"
#include "fuzz_util.h"

static void check_decide(const struct sts_policy *p, const char *host)
{
	struct tls_decide_in in = {"example.com", host, 0, 0, 0, (int)p->mode, TLS_DANE_NONE};
	struct tls_host_pol h;
	int allowed = sts_policy_allows(p, host);

	tls_host_decide(&in, allowed, NULL, 0, &h);
	CHECK(!h.refuse || (p->mode == STS_MODE_ENFORCE && !allowed));
	CHECK(!h.verify_required || p->mode == STS_MODE_ENFORCE);
	tls_host_pol_clear(&h);
}

static void check_policy(const char *text, size_t n)
{
	struct sts_policy p;
	const char *why = NULL;

	if (sts_policy_parse(text, n, &p, &why) < 0) {
		CHECK(why != NULL && p.n_mx == 0);
		return;
	}
	CHECK(why == NULL);
	CHECK(p.mode <= STS_MODE_ENFORCE && p.max_age <= STS_MAX_AGE_LIMIT);
	CHECK(p.n_mx <= STS_MX_MAX && (p.mode == STS_MODE_NONE || p.n_mx > 0));
	for (size_t i = 0; i < p.n_mx; i++) {
		char *one = xasprintf("x%s", p.mx[i] + 1);
		for (const char *c = p.mx[i]; *c; c++)
			CHECK(!(*c >= 'A' && *c <= 'Z'));
		if (p.mx[i][0] == '*')
			CHECK(sts_mx_match(p.mx[i], one));
		else
			CHECK(sts_mx_match(p.mx[i], p.mx[i]));
		check_decide(&p, p.mx[i]);
		free(one);
	}
	check_decide(&p, "unlisted.invalid");
	sts_policy_clear(&p);
}

static void check_records(const char *s)
{
	const char *v[2] = {s, "v=spf1 -all"};
	char id[STS_ID_MAX + 1];
	struct tlsrpt_record r;

	if (sts_txt_pick(v, 2, id)) {
		size_t n = strlen(id);
		CHECK(n >= 1 && n <= STS_ID_MAX);
	}
	if (tlsrpt_txt_pick(v, 2, &r)) {
		CHECK(r.n_rua >= 1 && r.n_rua <= TLSRPT_RUA_MAX);
		for (size_t i = 0; i < r.n_rua; i++)
			if (r.rua[i].kind == TLSRPT_RUA_MAILTO)
				CHECK(strchr(r.rua[i].addr, '@') == strrchr(r.rua[i].addr, '@'));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *copy = fuzz_copy(data, size);
	char *str = xstrndup((const char *)data, size);

	check_policy(copy, size);
	(void)tls_required_no(copy, size);
	check_records(str);
	free(copy);
	free(str);
	return 0;
}
