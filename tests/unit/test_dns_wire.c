/*
 * Unit tests for dns/dns_wire (PURE): replies built byte by byte from RFC
 * 1035 section 4.1, the header and question, names with and without
 * compression (and the pointers and lengths that must be refused), each
 * rdata reader (A, AAAA, MX, CNAME, TXT, SOA, TLSA), the answer records of
 * a question with CNAME chains, and the TTLs a reply may be cached for.
 * Then dns/dns_answer, which dns.c builds its cache entries with, from the
 * same hand-made replies: limits, statuses and TTL caps.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <ares.h>
#include <cmocka.h>

#include "dns/dns_answer.h"
#include "dns/dns_wire.h"
#include "util/util.h"

/* ---- a reply builder ---- */

struct msg {
	unsigned char b[70000];
	size_t n;
	size_t rdlen_at; /* where the open record's RDLENGTH goes */
};

static void put8(struct msg *m, unsigned v)
{
	m->b[m->n++] = (unsigned char)v;
}

static void put16(struct msg *m, unsigned v)
{
	put8(m, v >> 8);
	put8(m, v & 0xFF);
}

static void put32(struct msg *m, uint32_t v)
{
	put16(m, v >> 16);
	put16(m, v & 0xFFFF);
}

/* "mx.example.com" as labels; ".": the root; a trailing "@N" ends the
 * name with a pointer to offset N instead of the root. */
static size_t putname(struct msg *m, const char *text)
{
	size_t at = m->n;
	const char *p = text, *ptr = strchr(text, '@');

	while (*p && p != ptr && strcmp(p, ".") != 0) {
		const char *dot = strchr(p, '.');
		const char *end = dot && (!ptr || dot < ptr) ? dot : (ptr ? ptr : p + strlen(p));

		put8(m, (unsigned)(end - p));
		memcpy(m->b + m->n, p, (size_t)(end - p));
		m->n += (size_t)(end - p);
		p = *end == '.' ? end + 1 : end;
	}
	if (ptr)
		put16(m, 0xC000 | (unsigned)atoi(ptr + 1));
	else
		put8(m, 0);
	return at;
}

/* Header with the counts given and one question. */
static void header(struct msg *m, unsigned flags, unsigned an, unsigned ns, unsigned ar,
                   const char *qname, unsigned qtype)
{
	m->n = 0;
	put16(m, 0x1234);
	put16(m, flags);
	put16(m, 1);
	put16(m, an);
	put16(m, ns);
	put16(m, ar);
	putname(m, qname);
	put16(m, qtype);
	put16(m, DNS_C_IN);
}

static void rr_open(struct msg *m, const char *owner, unsigned type, uint32_t ttl)
{
	putname(m, owner);
	put16(m, type);
	put16(m, DNS_C_IN);
	put32(m, ttl);
	m->rdlen_at = m->n;
	put16(m, 0);
}

static void rr_close(struct msg *m)
{
	size_t len = m->n - m->rdlen_at - 2;

	m->b[m->rdlen_at] = (unsigned char)(len >> 8);
	m->b[m->rdlen_at + 1] = (unsigned char)len;
}

static void rr_a(struct msg *m, const char *owner, uint32_t ttl, unsigned last)
{
	rr_open(m, owner, DNS_T_A, ttl);
	put32(m, 0xC0000200u | last); /* 192.0.2.last */
	rr_close(m);
}

static void rr_mx(struct msg *m, const char *owner, uint32_t ttl, unsigned pref, const char *ex)
{
	rr_open(m, owner, DNS_T_MX, ttl);
	put16(m, pref);
	putname(m, ex);
	rr_close(m);
}

static void rr_cname(struct msg *m, const char *owner, uint32_t ttl, const char *target)
{
	rr_open(m, owner, DNS_T_CNAME, ttl);
	putname(m, target);
	rr_close(m);
}

static void rr_soa(struct msg *m, const char *owner, uint32_t ttl, uint32_t minimum)
{
	rr_open(m, owner, DNS_T_SOA, ttl);
	putname(m, "ns.example.com");
	putname(m, "hostmaster.example.com");
	put32(m, 2026010101);
	put32(m, 3600);
	put32(m, 600);
	put32(m, 86400);
	put32(m, minimum);
	rr_close(m);
}

static struct dns_wire parse_ok(const struct msg *m)
{
	struct dns_wire w;

	assert_int_equal(dns_wire_parse(&w, m->b, m->n), 0);
	return w;
}

static struct dns_rr next_rr(struct dns_rr_iter *it)
{
	struct dns_rr rr;

	assert_int_equal(dns_rr_next(it, &rr), 1);
	return rr;
}

static void text_of(const unsigned char *flat, char *out)
{
	dns_wire_name_text(flat, out);
}

/* ---- header and question ---- */

static void test_header(void **state)
{
	struct msg *m = xcalloc(1, sizeof(*m));
	struct dns_wire w;
	char text[DNS_WIRE_TEXT_MAX];

	(void)state;
	header(m, DNS_WIRE_QR | DNS_WIRE_AD | 3, 0, 0, 0, "Example.COM", DNS_T_MX);
	w = parse_ok(m);
	assert_int_equal(w.id, 0x1234);
	assert_int_equal(w.rcode, 3);
	assert_int_equal(w.qtype, DNS_T_MX);
	assert_int_equal(w.qclass, DNS_C_IN);
	assert_int_equal(w.rr_off, m->n);
	assert_true(dns_wire_ad(&w));
	text_of(w.qname, text);
	assert_string_equal(text, "Example.COM");
	header(m, DNS_WIRE_QR, 0, 0, 0, "example.com", DNS_T_MX);
	w = parse_ok(m);
	assert_false(dns_wire_ad(&w));
	/* every shorter prefix is refused */
	for (size_t n = 0; n < m->n; n++)
		assert_int_equal(dns_wire_parse(&w, m->b, n), -1);
	/* exactly one question */
	m->b[5] = 0;
	assert_int_equal(dns_wire_parse(&w, m->b, m->n), -1);
	m->b[5] = 2;
	assert_int_equal(dns_wire_parse(&w, m->b, m->n), -1);
	free(m);
}

/* ---- names ---- */

static int name_at(struct msg *m, size_t off, char *text)
{
	unsigned char flat[DNS_WIRE_NAME_MAX];
	struct dns_wire w = {.p = m->b, .len = m->n};
	size_t next = 0;

	if (dns_wire_name(&w, off, flat, &next) < 0)
		return -1;
	text_of(flat, text);
	return (int)next;
}

static void test_name_compression(void **state)
{
	struct msg *m = xcalloc(1, sizeof(*m));
	char text[DNS_WIRE_TEXT_MAX], ref[16];
	size_t a, b, c;

	(void)state;
	m->n = 12;
	a = putname(m, "example.com");
	b = putname(m, "mx@12"); /* mx + pointer to example.com */
	snprintf(ref, sizeof(ref), "a.b@%zu", b);
	c = putname(m, ref); /* a.b + pointer to mx.example.com */
	assert_int_equal(name_at(m, a, text), (int)b);
	assert_string_equal(text, "example.com");
	assert_int_equal(name_at(m, b, text), (int)c); /* ends after the pointer */
	assert_string_equal(text, "mx.example.com");
	assert_int_equal(name_at(m, c, text), (int)m->n);
	assert_string_equal(text, "a.b.mx.example.com");
	/* a pointer into the middle of a name is fine (it names a suffix) */
	putname(m, "x@20"); /* 20: "com" */
	assert_true(name_at(m, m->n - 4, text) > 0);
	assert_string_equal(text, "x.com");
	free(m);
}

static void test_name_refused(void **state)
{
	struct msg *m = xcalloc(1, sizeof(*m));
	char text[DNS_WIRE_TEXT_MAX];
	size_t at, i;

	(void)state;
	/* a pointer to itself, and one forwards */
	m->n = 12;
	at = m->n;
	put16(m, 0xC000 | (unsigned)at);
	assert_int_equal(name_at(m, at, text), -1);
	m->n = 12;
	put16(m, 0xC000 | 20);
	putname(m, "later.example");
	assert_int_equal(name_at(m, 12, text), -1);
	/* labels of the two reserved kinds */
	m->n = 12;
	put8(m, 0x41);
	put8(m, 0);
	assert_int_equal(name_at(m, 12, text), -1);
	m->b[12] = 0x81;
	assert_int_equal(name_at(m, 12, text), -1);
	/* a label running past the end, a name without its root, a lone
	 * half pointer */
	m->n = 12;
	put8(m, 5);
	put8(m, 'a');
	assert_int_equal(name_at(m, 12, text), -1);
	m->n = 12;
	put8(m, 1);
	put8(m, 'a');
	assert_int_equal(name_at(m, 12, text), -1);
	m->n = 12;
	put8(m, 0xC0);
	assert_int_equal(name_at(m, 12, text), -1);
	assert_int_equal(name_at(m, 13, text), -1); /* past the end */
	/* pointers to pointers: pointer i (at 13 + 2i) points to pointer i - 1,
	 * pointer 0 to the root at 12. Pointer 127 takes 128 jumps, the most a
	 * name may take; pointer 128 one too many. */
	m->n = 12;
	put8(m, 0);
	for (i = 0; i <= 128; i++)
		put16(m, 0xC000 | (unsigned)(i == 0 ? 12 : 13 + 2 * (i - 1)));
	assert_int_equal(name_at(m, 13 + 2 * 127, text), 13 + 2 * 127 + 2);
	assert_string_equal(text, "");
	assert_int_equal(name_at(m, 13 + 2 * 128, text), -1);
	free(m);
}

/* 255 bytes is the most a name may have: 4 labels of 62 and one of 2. */
static void test_name_length(void **state)
{
	struct msg *m = xcalloc(1, sizeof(*m));
	char text[DNS_WIRE_TEXT_MAX], label[64];
	int i;

	(void)state;
	memset(label, 'a', 63);
	label[62] = '\0';
	m->n = 12;
	for (i = 0; i < 4; i++) {
		put8(m, 62);
		memcpy(m->b + m->n, label, 62);
		m->n += 62;
	}
	put8(m, 1);
	put8(m, 'b');
	put8(m, 0);
	assert_int_equal(name_at(m, 12, text), 12 + 255); /* 4*63 + 2 + 1 */
	assert_int_equal(strlen(text), 253);
	/* one byte more is refused */
	m->n = 12 + 4 * 63;
	put8(m, 2);
	put8(m, 'b');
	put8(m, 'c');
	put8(m, 0);
	assert_int_equal(name_at(m, 12, text), -1);
	free(m);
}

static void test_name_text_and_eq(void **state)
{
	static const unsigned char odd[] = {3, 'a', '.', 'b', 2, 0x80, ' ', 3, 'M', '_', '-', 0};
	static const unsigned char up[] = {2, 'M', 'X', 3, 'C', 'o', 'M', 0};
	static const unsigned char low[] = {2, 'm', 'x', 3, 'c', 'o', 'm', 0};
	static const unsigned char other[] = {2, 'm', 'x', 3, 'c', 'o', 'n', 0};
	static const unsigned char longer[] = {2, 'm', 'x', 4, 'c', 'o', 'm', 'x', 0};
	static const unsigned char root[] = {0};
	char text[DNS_WIRE_TEXT_MAX];

	(void)state;
	text_of(odd, text);
	assert_string_equal(text, "a\\046b.\\128\\032.M_-");
	text_of(root, text);
	assert_string_equal(text, "");
	assert_true(dns_wire_name_eq(up, low));
	assert_false(dns_wire_name_eq(low, other));
	assert_false(dns_wire_name_eq(low, longer));
	assert_false(dns_wire_name_eq(root, low));
	assert_true(dns_wire_name_eq(root, root));
}

/* ---- records ---- */

static void test_records_and_sections(void **state)
{
	struct msg *m = xcalloc(1, sizeof(*m));
	struct dns_rr_iter it;
	struct dns_rr rr;
	struct dns_wire w;

	(void)state;
	header(m, DNS_WIRE_QR, 2, 1, 1, "example.com", DNS_T_A);
	rr_a(m, "example.com", 300, 1);
	rr_a(m, "example.com", 0x80000000u, 2); /* top bit: reads as 0 */
	rr_soa(m, "example.com", 60, 30);
	rr_a(m, "ns.example.com", 5, 3);
	w = parse_ok(m);
	dns_rr_iter_init(&it, &w);
	rr = next_rr(&it);
	assert_int_equal(rr.section, DNS_SEC_ANSWER);
	assert_int_equal(rr.ttl, 300);
	assert_int_equal(rr.rdlen, 4);
	rr = next_rr(&it);
	assert_int_equal(rr.ttl, 0);
	rr = next_rr(&it);
	assert_int_equal(rr.section, DNS_SEC_AUTHORITY);
	assert_int_equal(rr.type, DNS_T_SOA);
	rr = next_rr(&it);
	assert_int_equal(rr.section, DNS_SEC_ADDITIONAL);
	assert_int_equal(dns_rr_next(&it, &rr), 0);
	assert_int_equal(dns_rr_next(&it, &rr), 0);
	/* the counts claim one more record than there is */
	m->b[11] = 2;
	w = parse_ok(m);
	dns_rr_iter_init(&it, &w);
	for (int i = 0; i < 4; i++)
		next_rr(&it);
	assert_int_equal(dns_rr_next(&it, &rr), -1);
	assert_int_equal(dns_rr_next(&it, &rr), -1);
	/* an rdata running past the end: cut the last byte off */
	m->b[11] = 1;
	w = parse_ok(m);
	w.len--;
	dns_rr_iter_init(&it, &w);
	for (int i = 0; i < 3; i++)
		next_rr(&it);
	assert_int_equal(dns_rr_next(&it, &rr), -1);
	free(m);
}

static void test_rdata_readers(void **state)
{
	struct msg *m = xcalloc(1, sizeof(*m));
	unsigned char a4[4], a16[16], flat[DNS_WIRE_NAME_MAX];
	char text[DNS_WIRE_TEXT_MAX];
	struct dns_rr_iter it;
	struct dns_rr rr;
	struct dns_wire w;
	unsigned pref;

	(void)state;
	header(m, DNS_WIRE_QR, 4, 0, 0, "example.com", DNS_T_MX);
	rr_mx(m, "example.com", 60, 10, "mx@12"); /* 12: the question name */
	rr_a(m, "example.com", 60, 9);
	rr_open(m, "example.com", DNS_T_AAAA, 60);
	for (int i = 0; i < 16; i++)
		put8(m, (unsigned)i);
	rr_close(m);
	rr_cname(m, "www.example.com", 60, "example.com");
	w = parse_ok(m);
	dns_rr_iter_init(&it, &w);
	rr = next_rr(&it);
	assert_int_equal(dns_rr_mx(&w, &rr, &pref, flat), 0);
	assert_int_equal(pref, 10);
	text_of(flat, text);
	assert_string_equal(text, "mx.example.com");
	assert_int_equal(dns_rr_a(&w, &rr, a4), -1); /* wrong length */
	rr = next_rr(&it);
	assert_int_equal(dns_rr_a(&w, &rr, a4), 0);
	assert_memory_equal(a4, "\xc0\x00\x02\x09", 4);
	assert_int_equal(dns_rr_aaaa(&w, &rr, a16), -1);
	assert_int_equal(dns_rr_mx(&w, &rr, &pref, flat), -1); /* 4 bytes: no name */
	rr = next_rr(&it);
	assert_int_equal(dns_rr_aaaa(&w, &rr, a16), 0);
	assert_int_equal(a16[15], 15);
	rr = next_rr(&it);
	assert_int_equal(dns_rr_cname(&w, &rr, flat), 0);
	text_of(flat, text);
	assert_string_equal(text, "example.com");
	/* trailing bytes after the MX's name, and a name that runs past the
	 * rdata: both refused */
	header(m, DNS_WIRE_QR, 1, 0, 0, "example.com", DNS_T_MX);
	rr_open(m, "example.com", DNS_T_MX, 60);
	put16(m, 5);
	putname(m, "mx.example.com");
	put8(m, 0);
	rr_close(m);
	w = parse_ok(m);
	dns_rr_iter_init(&it, &w);
	rr = next_rr(&it);
	assert_int_equal(dns_rr_mx(&w, &rr, &pref, flat), -1);
	rr.rdlen -= 3; /* the name now ends outside */
	assert_int_equal(dns_rr_mx(&w, &rr, &pref, flat), -1);
	free(m);
}

static void test_txt(void **state)
{
	struct msg *m = xcalloc(1, sizeof(*m));
	struct dns_rr_iter it;
	struct dns_rr rr;
	struct dns_wire w;
	struct buf b;

	(void)state;
	buf_init(&b);
	header(m, DNS_WIRE_QR, 3, 0, 0, "example.com", DNS_T_TXT);
	rr_open(m, "example.com", DNS_T_TXT, 60);
	put8(m, 6);
	memcpy(m->b + m->n, "v=spf1", 6), m->n += 6;
	put8(m, 0); /* an empty string between */
	put8(m, 5);
	memcpy(m->b + m->n, " -all", 5), m->n += 5;
	rr_close(m);
	rr_open(m, "example.com", DNS_T_TXT, 60);
	put8(m, 3);
	memcpy(m->b + m->n, "a\0b", 3), m->n += 3;
	rr_close(m);
	rr_open(m, "example.com", DNS_T_TXT, 60);
	put8(m, 9); /* claims more than the rdata holds */
	put8(m, 'x');
	rr_close(m);
	w = parse_ok(m);
	dns_rr_iter_init(&it, &w);
	rr = next_rr(&it);
	assert_int_equal(dns_rr_txt(&w, &rr, &b), 0);
	assert_string_equal(b.data, "v=spf1 -all");
	buf_reset(&b);
	rr = next_rr(&it);
	assert_int_equal(dns_rr_txt(&w, &rr, &b), 0);
	assert_int_equal(b.len, 3); /* the NUL is kept, and counted */
	buf_reset(&b);
	buf_puts(&b, "kept");
	rr = next_rr(&it);
	assert_int_equal(dns_rr_txt(&w, &rr, &b), -1);
	assert_string_equal(b.data, "kept"); /* nothing half-appended */
	rr.rdlen = 0;
	assert_int_equal(dns_rr_txt(&w, &rr, &b), -1);
	buf_free(&b);
	free(m);
}

static void test_soa_and_ttls(void **state)
{
	struct msg *m = xcalloc(1, sizeof(*m));
	struct dns_wire_ttls t;
	struct dns_rr_iter it;
	struct dns_rr rr;
	struct dns_wire w;
	uint32_t min;

	(void)state;
	/* positive: the lowest TTL of the answer section, CNAME included */
	header(m, DNS_WIRE_QR, 3, 0, 1, "www.example.com", DNS_T_A);
	rr_cname(m, "www.example.com", 120, "example.com");
	rr_a(m, "example.com", 300, 1);
	rr_a(m, "example.com", 200, 2);
	rr_a(m, "ns.example.com", 5, 3); /* additional: does not count */
	w = parse_ok(m);
	dns_wire_ttls(&w, &t);
	assert_int_equal(t.answer_min, 120);
	assert_int_equal(t.soa_neg, UINT32_MAX);
	/* negative: min(SOA TTL, MINIMUM), the lowest of several */
	header(m, DNS_WIRE_QR | 3, 0, 2, 0, "nx.example.com", DNS_T_MX);
	rr_soa(m, "example.com", 900, 600);
	rr_soa(m, "example.com", 400, 3600);
	w = parse_ok(m);
	dns_wire_ttls(&w, &t);
	assert_int_equal(t.answer_min, UINT32_MAX);
	assert_int_equal(t.soa_neg, 400);
	dns_rr_iter_init(&it, &w);
	rr = next_rr(&it);
	assert_int_equal(dns_rr_soa_minimum(&w, &rr, &min), 0);
	assert_int_equal(min, 600);
	rr.rdlen--; /* a SOA one byte short */
	assert_int_equal(dns_rr_soa_minimum(&w, &rr, &min), -1);
	/* a MINIMUM with the top bit reads as 0 */
	header(m, DNS_WIRE_QR | 3, 0, 1, 0, "nx.example.com", DNS_T_MX);
	rr_soa(m, "example.com", 900, 0x90000000u);
	w = parse_ok(m);
	dns_wire_ttls(&w, &t);
	assert_int_equal(t.soa_neg, 0);
	/* a malformed record stops the walk; what came before counts */
	header(m, DNS_WIRE_QR, 2, 0, 0, "example.com", DNS_T_A);
	rr_a(m, "example.com", 50, 1);
	rr_a(m, "example.com", 10, 2);
	m->n -= 1;
	w = parse_ok(m);
	dns_wire_ttls(&w, &t);
	assert_int_equal(t.answer_min, 50);
	free(m);
}

static void test_tlsa(void **state)
{
	struct msg *m = xcalloc(1, sizeof(*m));
	struct dns_rr_iter it;
	struct dns_tlsa t;
	struct dns_rr rr;
	struct dns_wire w;
	int i;

	(void)state;
	header(m, DNS_WIRE_QR | DNS_WIRE_AD, 1, 0, 0, "_25._tcp.mx.example.com", DNS_T_TLSA);
	rr_open(m, "_25._tcp.mx.example.com", DNS_T_TLSA, 300);
	put8(m, 3); /* DANE-EE */
	put8(m, 1); /* SPKI */
	put8(m, 1); /* SHA-256 */
	for (i = 0; i < 32; i++)
		put8(m, (unsigned)i);
	rr_close(m);
	w = parse_ok(m);
	assert_true(dns_wire_ad(&w));
	dns_rr_iter_init(&it, &w);
	rr = next_rr(&it);
	assert_int_equal(dns_rr_tlsa(&w, &rr, &t), 0);
	assert_int_equal(t.usage, 3);
	assert_int_equal(t.selector, 1);
	assert_int_equal(t.mtype, 1);
	assert_int_equal(t.len, 32);
	assert_int_equal(t.data[31], 31);
	assert_true(dns_tlsa_usable(&t));
	t.len = 31; /* a SHA-256 digest of the wrong length */
	assert_false(dns_tlsa_usable(&t));
	t = (struct dns_tlsa){.usage = 2, .selector = 0, .mtype = 2, .len = 64};
	assert_true(dns_tlsa_usable(&t));
	t = (struct dns_tlsa){.usage = 3, .selector = 0, .mtype = 0, .len = 500};
	assert_true(dns_tlsa_usable(&t));
	t = (struct dns_tlsa){.usage = 4, .selector = 0, .mtype = 0, .len = 5};
	assert_false(dns_tlsa_usable(&t));
	t = (struct dns_tlsa){.usage = 3, .selector = 2, .mtype = 0, .len = 5};
	assert_false(dns_tlsa_usable(&t));
	t = (struct dns_tlsa){.usage = 3, .selector = 1, .mtype = 3, .len = 32};
	assert_false(dns_tlsa_usable(&t));
	rr.rdlen = 3; /* the fields without data */
	assert_int_equal(dns_rr_tlsa(&w, &rr, &t), -1);
	free(m);
}

/* ---- answers ---- */

struct seen {
	unsigned n, stop_after;
	unsigned last[16];
};

static int see_a(void *arg, const struct dns_wire *w, const struct dns_rr *rr)
{
	struct seen *s = arg;
	unsigned char a[4];

	assert_int_equal(dns_rr_a(w, rr, a), 0);
	s->last[s->n++ % 16] = a[3];
	return s->stop_after && s->n == s->stop_after;
}

static void test_answers_chain(void **state)
{
	struct msg *m = xcalloc(1, sizeof(*m));
	struct seen s = {0};
	struct dns_wire w;

	(void)state;
	header(m, DNS_WIRE_QR, 6, 0, 0, "WWW.example.com", DNS_T_A);
	rr_a(m, "other.example.com", 60, 1);                    /* not on the chain */
	rr_cname(m, "www.example.com", 60, "edge.example.net"); /* case differs */
	rr_cname(m, "edge.example.net", 60, "host.example.net");
	rr_a(m, "host.example.net", 60, 7);
	rr_open(m, "host.example.net", DNS_T_A, 60); /* class CH: not an answer */
	m->b[m->n - 8] = 0, m->b[m->n - 7] = 3;
	put32(m, 0);
	rr_close(m);
	rr_a(m, "HOST.example.net", 60, 8);
	w = parse_ok(m);
	assert_int_equal(dns_wire_answers(&w, see_a, &s), 2);
	assert_int_equal(s.last[0], 7);
	assert_int_equal(s.last[1], 8);
	/* stop early */
	memset(&s, 0, sizeof(s));
	s.stop_after = 1;
	assert_int_equal(dns_wire_answers(&w, see_a, &s), 1);
	/* only a CNAME: no answer, no error */
	header(m, DNS_WIRE_QR, 1, 0, 0, "www.example.com", DNS_T_A);
	rr_cname(m, "www.example.com", 60, "example.com");
	w = parse_ok(m);
	memset(&s, 0, sizeof(s));
	assert_int_equal(dns_wire_answers(&w, see_a, &s), 0);
	/* a malformed answer section */
	header(m, DNS_WIRE_QR, 2, 0, 0, "example.com", DNS_T_A);
	rr_a(m, "example.com", 60, 1);
	put8(m, 0x80);
	w = parse_ok(m);
	memset(&s, 0, sizeof(s));
	assert_int_equal(dns_wire_answers(&w, see_a, &s), -1);
	assert_int_equal(s.n, 1);
	free(m);
}

/* A chain of 17 CNAMEs is one too long; a loop ends at the limit. */
static void test_answers_chain_limit(void **state)
{
	struct msg *m = xcalloc(1, sizeof(*m));
	struct seen s = {0};
	struct dns_wire w;
	char from[32], to[32];
	int i, links;

	(void)state;
	for (links = 16; links <= 17; links++) {
		header(m, DNS_WIRE_QR, (unsigned)links + 1, 0, 0, "c0.example", DNS_T_A);
		for (i = 0; i < links; i++) {
			snprintf(from, sizeof(from), "c%d.example", i);
			snprintf(to, sizeof(to), "c%d.example", i + 1);
			rr_cname(m, from, 60, to);
		}
		rr_a(m, to, 60, 5);
		w = parse_ok(m);
		memset(&s, 0, sizeof(s));
		assert_int_equal(dns_wire_answers(&w, see_a, &s), links == 16 ? 1 : 0);
	}
	header(m, DNS_WIRE_QR, 3, 0, 0, "a.example", DNS_T_A);
	rr_cname(m, "a.example", 60, "b.example");
	rr_cname(m, "b.example", 60, "a.example");
	rr_a(m, "a.example", 60, 1);
	w = parse_ok(m);
	memset(&s, 0, sizeof(s));
	assert_int_equal(dns_wire_answers(&w, see_a, &s), 1);
	free(m);
}

/* ---- answers as dns.c builds them (dns_answer) ---- */

static const struct dns_opts opts = {.max_ttl = 3600, .max_neg_ttl = 300};

static struct dns_answer *answer(const struct msg *m, int type, int status, uint32_t *ttl)
{
	return dns_answer_from_reply(type, status, m->b, (int)m->n, &opts, ttl);
}

/* The best 64 of 70 MX records; the lowest TTL, capped at max_ttl. */
static void test_answer_mx(void **state)
{
	struct msg *m = xcalloc(1, sizeof(*m));
	struct dns_answer *a;
	char ex[32];
	uint32_t ttl;
	unsigned i;

	(void)state;
	header(m, DNS_WIRE_QR, 70, 0, 0, "example.com", DNS_T_MX);
	for (i = 70; i >= 1; i--) {
		snprintf(ex, sizeof(ex), "mx%u.example.com", i);
		rr_mx(m, "example.com", 7200 + i, i, ex);
	}
	a = answer(m, DNS_T_MX, ARES_SUCCESS, &ttl);
	assert_int_equal(a->status, DNS_OK);
	assert_int_equal(a->n, DNS_MX_KEEP);
	for (i = 0; i < a->n; i++)
		assert_true(a->mx[i].pref <= DNS_MX_KEEP);
	assert_int_equal(ttl, 3600);
	dns_answer_unref(a);
	/* a TTL under the cap is kept; the exchange's text as written */
	header(m, DNS_WIRE_QR, 1, 0, 0, "example.com", DNS_T_MX);
	rr_mx(m, "example.com", 120, 10, "MX.Example.com");
	a = answer(m, DNS_T_MX, ARES_SUCCESS, &ttl);
	assert_int_equal(a->n, 1);
	assert_string_equal(a->mx[0].exchange, "MX.Example.com");
	assert_int_equal(ttl, 120);
	dns_answer_unref(a);
	free(m);
}

static void test_answer_addrs(void **state)
{
	struct msg *m = xcalloc(1, sizeof(*m));
	struct dns_answer *a;
	uint32_t ttl;
	unsigned i;

	(void)state;
	header(m, DNS_WIRE_QR, 10, 0, 0, "mx.example.com", DNS_T_A);
	for (i = 1; i <= 10; i++)
		rr_a(m, "mx.example.com", 60, i);
	a = answer(m, DNS_T_A, ARES_SUCCESS, &ttl);
	assert_int_equal(a->status, DNS_OK);
	assert_int_equal(a->n, DNS_MAX_ADDRS); /* the first ones */
	assert_int_equal(a->addrs[0].family, AF_INET);
	assert_int_equal(a->addrs[7].addr[3], 8);
	dns_answer_unref(a);
	/* an A record of 5 bytes: malformed, a temporary failure, not cached */
	header(m, DNS_WIRE_QR, 2, 0, 0, "mx.example.com", DNS_T_A);
	rr_a(m, "mx.example.com", 60, 1);
	rr_open(m, "mx.example.com", DNS_T_A, 60);
	put32(m, 0xC0000201u);
	put8(m, 0);
	rr_close(m);
	a = answer(m, DNS_T_A, ARES_SUCCESS, &ttl);
	assert_int_equal(a->status, DNS_TEMPFAIL);
	assert_int_equal(a->n, 0);
	assert_null(a->addrs);
	assert_int_equal(ttl, 0);
	dns_answer_unref(a);
	/* the reply answers another type than was asked */
	header(m, DNS_WIRE_QR, 1, 0, 0, "mx.example.com", DNS_T_A);
	rr_a(m, "mx.example.com", 60, 1);
	a = answer(m, DNS_T_AAAA, ARES_SUCCESS, &ttl);
	assert_int_equal(a->status, DNS_TEMPFAIL);
	dns_answer_unref(a);
	free(m);
}

static void txt_rr(struct msg *m, const char *s, size_t n)
{
	rr_open(m, "example.com", DNS_T_TXT, 60);
	put8(m, (unsigned)n);
	memcpy(m->b + m->n, s, n);
	m->n += n;
	rr_close(m);
}

/* Empty records and records holding a NUL are left out; at most 32. */
static void test_answer_txt(void **state)
{
	struct msg *m = xcalloc(1, sizeof(*m));
	struct dns_answer *a;
	uint32_t ttl;
	int i;

	(void)state;
	header(m, DNS_WIRE_QR, 43, 0, 0, "example.com", DNS_T_TXT);
	txt_rr(m, "", 0);
	txt_rr(m, "a\0b", 3);
	txt_rr(m, "v=spf1 -all", 11);
	for (i = 0; i < 40; i++)
		txt_rr(m, "more", 4);
	a = answer(m, DNS_T_TXT, ARES_SUCCESS, &ttl);
	assert_int_equal(a->status, DNS_OK);
	assert_int_equal(a->n, DNS_MAX_TXT);
	assert_string_equal(a->txt[0], "v=spf1 -all");
	assert_string_equal(a->txt[31], "more");
	dns_answer_unref(a);
	/* only records left out: NODATA, kept as long as a negative answer */
	header(m, DNS_WIRE_QR, 1, 0, 0, "example.com", DNS_T_TXT);
	txt_rr(m, "a\0b", 3);
	a = answer(m, DNS_T_TXT, ARES_SUCCESS, &ttl);
	assert_int_equal(a->status, DNS_NODATA);
	assert_int_equal(ttl, DNS_NEG_TTL_NO_SOA);
	dns_answer_unref(a);
	free(m);
}

/* Statuses from c-ares, and negative TTLs from the SOA, capped. */
static void test_answer_negative(void **state)
{
	struct msg *m = xcalloc(1, sizeof(*m));
	struct dns_answer *a;
	uint32_t ttl;

	(void)state;
	header(m, DNS_WIRE_QR | 3, 0, 1, 0, "nx.example.com", DNS_T_MX);
	rr_soa(m, "example.com", 900, 120);
	a = answer(m, DNS_T_MX, ARES_ENOTFOUND, &ttl);
	assert_int_equal(a->status, DNS_NXDOMAIN);
	assert_non_null(a->error);
	assert_int_equal(ttl, 120);
	dns_answer_unref(a);
	header(m, DNS_WIRE_QR | 3, 0, 1, 0, "nx.example.com", DNS_T_MX);
	rr_soa(m, "example.com", 9000, 9000);
	a = answer(m, DNS_T_MX, ARES_ENOTFOUND, &ttl);
	assert_int_equal(ttl, 300); /* max_neg_ttl */
	dns_answer_unref(a);
	/* only a CNAME: NODATA, for the SOA's time */
	header(m, DNS_WIRE_QR, 1, 1, 0, "www.example.com", DNS_T_MX);
	rr_cname(m, "www.example.com", 60, "example.com");
	rr_soa(m, "example.com", 90, 200);
	a = answer(m, DNS_T_MX, ARES_SUCCESS, &ttl);
	assert_int_equal(a->status, DNS_NODATA);
	assert_int_equal(ttl, 90);
	dns_answer_unref(a);
	/* no reply at all */
	a = dns_answer_from_reply(DNS_T_A, ARES_ETIMEOUT, NULL, 0, &opts, &ttl);
	assert_int_equal(a->status, DNS_TEMPFAIL);
	assert_int_equal(ttl, 0);
	dns_answer_unref(a);
	a = dns_answer_from_reply(DNS_T_A, ARES_SUCCESS, NULL, 0, &opts, &ttl);
	assert_int_equal(a->status, DNS_TEMPFAIL);
	dns_answer_unref(a);
	a = dns_answer_from_reply(DNS_T_A, ARES_EDESTRUCTION, NULL, 0, &opts, &ttl);
	assert_int_equal(a->status, DNS_CANCELLED);
	assert_int_equal(ttl, 0);
	dns_answer_unref(a);
	free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_header),           cmocka_unit_test(test_name_compression),
	    cmocka_unit_test(test_name_refused),     cmocka_unit_test(test_name_length),
	    cmocka_unit_test(test_name_text_and_eq), cmocka_unit_test(test_records_and_sections),
	    cmocka_unit_test(test_rdata_readers),    cmocka_unit_test(test_txt),
	    cmocka_unit_test(test_soa_and_ttls),     cmocka_unit_test(test_tlsa),
	    cmocka_unit_test(test_answers_chain),    cmocka_unit_test(test_answers_chain_limit),
	    cmocka_unit_test(test_answer_mx),        cmocka_unit_test(test_answer_addrs),
	    cmocka_unit_test(test_answer_txt),       cmocka_unit_test(test_answer_negative),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
