/*
 * libFuzzer target for dns/dns_wire: the input is a DNS reply as a server
 * (or anyone on the path) could send it. It is copied to a heap block of
 * its exact size, so AddressSanitizer catches a read one byte too far.
 *
 * Every record goes through every rdata reader, whatever its type, and the
 * answers and TTLs are read as dns.c reads them. Beyond "no crash", it
 * checks what dns.c relies on: names are flat, end with the root and fit
 * DNS_WIRE_NAME_MAX; their text fits DNS_WIRE_TEXT_MAX and holds only
 * letters, digits, '-', '_', '.' and "\DDD" escapes; every rdata lies
 * inside the message; answers have the question's type and class IN and
 * come from the answer section; TTLs never have the top bit set; and a
 * second pass gives the same records.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dns/dns_wire.h"
#include "util/util.h"
#include "fuzz_util.h"

static void check_flat(const unsigned char *flat)
{
	char text[DNS_WIRE_TEXT_MAX];
	size_t i = 0, len;

	while (flat[i]) {
		CHECK(flat[i] <= 63);
		i += 1 + flat[i];
		CHECK(i < DNS_WIRE_NAME_MAX);
	}
	CHECK(dns_wire_name_eq(flat, flat));
	dns_wire_name_text(flat, text);
	len = strlen(text);
	CHECK(len < DNS_WIRE_TEXT_MAX);
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)text[i];

		CHECK((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.' || c == '\\');
	}
}

/* Every reader on one record: each either refuses or gives sane fields. */
static void read_all(const struct dns_wire *m, const struct dns_rr *rr)
{
	unsigned char a[16], flat[DNS_WIRE_NAME_MAX];
	struct dns_tlsa t;
	unsigned pref;
	uint32_t min;
	struct buf b;

	CHECK(rr->rdata_off <= m->len && rr->rdlen <= m->len - rr->rdata_off);
	CHECK(rr->ttl <= 0x7FFFFFFFu);
	check_flat(rr->owner);
	if (dns_rr_a(m, rr, a) == 0)
		CHECK(rr->rdlen == 4);
	if (dns_rr_aaaa(m, rr, a) == 0)
		CHECK(rr->rdlen == 16);
	if (dns_rr_mx(m, rr, &pref, flat) == 0) {
		CHECK(pref <= 0xFFFF);
		check_flat(flat);
	}
	if (dns_rr_cname(m, rr, flat) == 0)
		check_flat(flat);
	buf_init(&b);
	if (dns_rr_txt(m, rr, &b) == 0)
		CHECK(b.len < rr->rdlen);
	else
		CHECK(b.len == 0);
	buf_free(&b);
	if (dns_rr_soa_minimum(m, rr, &min) == 0)
		CHECK(rr->rdlen >= 22);
	if (dns_rr_tlsa(m, rr, &t) == 0) {
		CHECK(t.len == rr->rdlen - 3 && t.len > 0);
		CHECK(t.data == m->p + rr->rdata_off + 3);
		CHECK(t.usage <= 255 && t.selector <= 255 && t.mtype <= 255);
		(void)dns_tlsa_usable(&t);
	}
}

/* Walks every record; returns how many, and a sum of what was read. */
static unsigned walk(const struct dns_wire *m, uint64_t *sum)
{
	struct dns_rr_iter it;
	struct dns_rr rr;
	unsigned n = 0;
	int rc;

	*sum = 0;
	dns_rr_iter_init(&it, m);
	while ((rc = dns_rr_next(&it, &rr)) == 1) {
		read_all(m, &rr);
		*sum = *sum * 31 + rr.type * 7 + rr.class * 3 + rr.ttl + rr.rdata_off + rr.rdlen;
		n++;
	}
	CHECK(n <= m->ancount + m->nscount + m->arcount);
	CHECK(rc == 0 || rc == -1);
	CHECK(dns_rr_next(&it, &rr) == rc); /* the end, or the fault, stays */
	return n;
}

static int on_answer(void *arg, const struct dns_wire *m, const struct dns_rr *rr)
{
	unsigned *n = arg;

	CHECK(rr->section == DNS_SEC_ANSWER);
	CHECK(rr->type == m->qtype && rr->class == DNS_C_IN);
	read_all(m, rr);
	(*n)++;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned char *p = (unsigned char *)fuzz_copy(data, size);
	struct dns_wire m;
	struct dns_wire_ttls t;
	uint64_t sum1, sum2;
	unsigned calls = 0;
	long n;

	if (dns_wire_parse(&m, p, size) == 0) {
		CHECK(m.qdcount == 1 && m.rr_off <= size);
		check_flat(m.qname);
		CHECK(walk(&m, &sum1) == walk(&m, &sum2) && sum1 == sum2);
		n = dns_wire_answers(&m, on_answer, &calls);
		CHECK(n == -1 || n == (long)calls);
		dns_wire_ttls(&m, &t);
		CHECK(t.answer_min == UINT32_MAX || t.answer_min <= 0x7FFFFFFFu);
		CHECK(t.soa_neg == UINT32_MAX || t.soa_neg <= 0x7FFFFFFFu);
	}
	free(p);
	return 0;
}
