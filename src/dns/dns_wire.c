/*
 * dns_wire: the reader of DNS reply bytes; dns_wire.h has the contract.
 *
 * One cursor type does every read: a position in the message and the end
 * it must not pass (the message's end, or an rdata's). Every read checks
 * the cursor first, so no function below indexes the message unchecked.
 */
#include "dns/dns_wire.h"

#include <string.h>

struct cur {
	const unsigned char *p;
	size_t off, end;
};

static int cur_u8(struct cur *c, unsigned *v)
{
	if (c->off + 1 > c->end)
		return -1;
	*v = c->p[c->off++];
	return 0;
}

static int cur_u16(struct cur *c, unsigned *v)
{
	if (c->off + 2 > c->end)
		return -1;
	*v = (unsigned)c->p[c->off] << 8 | c->p[c->off + 1];
	c->off += 2;
	return 0;
}

static int cur_u32(struct cur *c, uint32_t *v)
{
	if (c->off + 4 > c->end)
		return -1;
	*v = (uint32_t)c->p[c->off] << 24 | (uint32_t)c->p[c->off + 1] << 16 |
	     (uint32_t)c->p[c->off + 2] << 8 | c->p[c->off + 3];
	c->off += 4;
	return 0;
}

/* ---- names ---- */

/*
 * Pointers must point before the label that holds them, so the walk moves
 * strictly backwards at each jump and ends; and at most NAME_JUMPS of them
 * (a name has at most 127 labels to point at), so that a chain of pointers
 * to pointers cannot cost a pass over the whole message per name. A
 * pointer may point anywhere earlier in the message, also into another
 * record's data: that is how names are compressed. Only the name's first
 * occurrence advances *next.
 */
#define NAME_JUMPS 128

static int name_read(const unsigned char *p, size_t len, size_t off, unsigned char *out,
                     size_t *next)
{
	size_t o = 0, pos = off;
	int jumps = 0;

	for (;;) {
		unsigned c;

		if (pos >= len)
			return -1;
		c = p[pos];
		if ((c & 0xC0) == 0xC0) {
			size_t to;

			if (pos + 2 > len)
				return -1;
			to = (size_t)(c & 0x3F) << 8 | p[pos + 1];
			if (to >= pos || jumps >= NAME_JUMPS)
				return -1;
			if (!jumps++)
				*next = pos + 2;
			pos = to;
			continue;
		}
		if (c & 0xC0)
			return -1;
		if (pos + 1 + c > len || o + 1 + c > DNS_WIRE_NAME_MAX)
			return -1;
		memcpy(out + o, p + pos, 1 + (size_t)c);
		o += 1 + (size_t)c;
		pos += 1 + (size_t)c;
		if (c == 0) {
			if (!jumps)
				*next = pos;
			return 0;
		}
	}
}

int dns_wire_name(const struct dns_wire *m, size_t off, unsigned char *out, size_t *next)
{
	return name_read(m->p, m->len, off, out, next);
}

/* A name inside an rdata: it may point anywhere before it, but must end
 * (where it lies in place) inside the rdata. */
static int cur_name(const struct dns_wire *m, struct cur *c, unsigned char *out)
{
	size_t next;

	if (c->off >= c->end || name_read(m->p, m->len, c->off, out, &next) < 0 || next > c->end)
		return -1;
	c->off = next;
	return 0;
}

static unsigned char lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c;
}

/* Flat names end at their root label, so walking a until its 0 length
 * byte (compared like any other byte) stays inside both. */
int dns_wire_name_eq(const unsigned char *a, const unsigned char *b)
{
	size_t i = 0;

	for (;;) {
		size_t n = a[i], j;

		if (b[i] != n)
			return 0;
		if (n == 0)
			return 1;
		for (j = i + 1; j <= i + n; j++)
			if (lower(a[j]) != lower(b[j]))
				return 0;
		i += n + 1;
	}
}

static int text_plain(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_';
}

void dns_wire_name_text(const unsigned char *flat, char *out)
{
	size_t i = 0, o = 0;

	while (flat[i]) {
		size_t n = flat[i++], end = i + n;

		if (o > 0)
			out[o++] = '.';
		for (; i < end; i++) {
			unsigned char c = flat[i];

			if (text_plain(c)) {
				out[o++] = (char)c;
				continue;
			}
			out[o++] = '\\';
			out[o++] = (char)('0' + c / 100);
			out[o++] = (char)('0' + c / 10 % 10);
			out[o++] = (char)('0' + c % 10);
		}
	}
	out[o] = '\0';
}

/* ---- message and records ---- */

int dns_wire_parse(struct dns_wire *m, const unsigned char *p, size_t len)
{
	struct cur c = {p, 0, len};
	size_t next;

	memset(m, 0, sizeof(*m));
	m->p = p;
	m->len = len;
	if (cur_u16(&c, &m->id) < 0 || cur_u16(&c, &m->flags) < 0 || cur_u16(&c, &m->qdcount) < 0 ||
	    cur_u16(&c, &m->ancount) < 0 || cur_u16(&c, &m->nscount) < 0 ||
	    cur_u16(&c, &m->arcount) < 0)
		return -1;
	m->rcode = m->flags & 0x0F;
	if (m->qdcount != 1 || name_read(p, len, c.off, m->qname, &next) < 0)
		return -1;
	c.off = next;
	if (cur_u16(&c, &m->qtype) < 0 || cur_u16(&c, &m->qclass) < 0)
		return -1;
	m->rr_off = c.off;
	return 0;
}

int dns_wire_ad(const struct dns_wire *m)
{
	return (m->flags & DNS_WIRE_AD) != 0;
}

void dns_rr_iter_init(struct dns_rr_iter *it, const struct dns_wire *m)
{
	it->m = m;
	it->off = m->rr_off;
	it->i = 0;
}

static enum dns_section section_of(const struct dns_wire *m, unsigned i)
{
	if (i < m->ancount)
		return DNS_SEC_ANSWER;
	return i < m->ancount + m->nscount ? DNS_SEC_AUTHORITY : DNS_SEC_ADDITIONAL;
}

int dns_rr_next(struct dns_rr_iter *it, struct dns_rr *rr)
{
	const struct dns_wire *m = it->m;
	struct cur c = {m->p, it->off, m->len};
	unsigned rdlen;
	size_t next;

	if (it->off == SIZE_MAX)
		return -1;
	if (it->i >= m->ancount + m->nscount + m->arcount)
		return 0;
	if (name_read(m->p, m->len, c.off, rr->owner, &next) < 0)
		goto bad;
	c.off = next;
	if (cur_u16(&c, &rr->type) < 0 || cur_u16(&c, &rr->class) < 0 ||
	    cur_u32(&c, &rr->ttl) < 0 || cur_u16(&c, &rdlen) < 0 || c.off + rdlen > m->len)
		goto bad;
	if (rr->ttl > 0x7FFFFFFFu)
		rr->ttl = 0;
	rr->section = section_of(m, it->i++);
	rr->rdata_off = c.off;
	rr->rdlen = rdlen;
	it->off = c.off + rdlen;
	return 1;
bad:
	it->off = SIZE_MAX;
	return -1;
}

/* ---- rdata ---- */

static struct cur rdata(const struct dns_wire *m, const struct dns_rr *rr)
{
	return (struct cur){m->p, rr->rdata_off, rr->rdata_off + rr->rdlen};
}

int dns_rr_a(const struct dns_wire *m, const struct dns_rr *rr, unsigned char out[4])
{
	if (rr->rdlen != 4)
		return -1;
	memcpy(out, m->p + rr->rdata_off, 4);
	return 0;
}

int dns_rr_aaaa(const struct dns_wire *m, const struct dns_rr *rr, unsigned char out[16])
{
	if (rr->rdlen != 16)
		return -1;
	memcpy(out, m->p + rr->rdata_off, 16);
	return 0;
}

int dns_rr_mx(const struct dns_wire *m, const struct dns_rr *rr, unsigned *pref,
              unsigned char *exchange)
{
	struct cur c = rdata(m, rr);

	if (cur_u16(&c, pref) < 0 || cur_name(m, &c, exchange) < 0)
		return -1;
	return c.off == c.end ? 0 : -1;
}

int dns_rr_cname(const struct dns_wire *m, const struct dns_rr *rr, unsigned char *target)
{
	struct cur c = rdata(m, rr);

	if (cur_name(m, &c, target) < 0)
		return -1;
	return c.off == c.end ? 0 : -1;
}

int dns_rr_txt(const struct dns_wire *m, const struct dns_rr *rr, struct buf *out)
{
	struct cur c = rdata(m, rr);
	size_t start = out->len;
	unsigned n;

	if (rr->rdlen == 0)
		return -1; /* RFC 1035 3.3.14: one or more strings */
	while (c.off < c.end) {
		if (cur_u8(&c, &n) < 0 || c.off + n > c.end) {
			out->len = start;
			if (out->data)
				out->data[start] = '\0';
			return -1;
		}
		buf_append(out, m->p + c.off, n);
		c.off += n;
	}
	return 0;
}

int dns_rr_soa_minimum(const struct dns_wire *m, const struct dns_rr *rr, uint32_t *minimum)
{
	unsigned char name[DNS_WIRE_NAME_MAX];
	struct cur c = rdata(m, rr);
	uint32_t v[5];
	int i;

	if (cur_name(m, &c, name) < 0 || cur_name(m, &c, name) < 0)
		return -1;
	for (i = 0; i < 5; i++)
		if (cur_u32(&c, &v[i]) < 0)
			return -1;
	if (c.off != c.end)
		return -1;
	*minimum = v[4];
	return 0;
}

int dns_rr_tlsa(const struct dns_wire *m, const struct dns_rr *rr, struct dns_tlsa *t)
{
	struct cur c = rdata(m, rr);

	if (cur_u8(&c, &t->usage) < 0 || cur_u8(&c, &t->selector) < 0 ||
	    cur_u8(&c, &t->mtype) < 0 || c.off >= c.end)
		return -1;
	t->data = m->p + c.off;
	t->len = c.end - c.off;
	return 0;
}

int dns_tlsa_usable(const struct dns_tlsa *t)
{
	if (t->usage > 3 || t->selector > 1)
		return 0;
	return t->mtype == 0 || (t->mtype == 1 && t->len == 32) || (t->mtype == 2 && t->len == 64);
}

/* ---- answers and TTLs ---- */

/*
 * One pass, in order, as resolvers write a chain (a CNAME before the
 * records of its target). The name followed starts as the question name;
 * a CNAME owned by it moves it on (at most DNS_WIRE_CHAIN_MAX times), a
 * record of the question's type owned by it answers. A single pass keeps
 * the cost linear in the reply's size whatever a server puts in it.
 */
long dns_wire_answers(const struct dns_wire *m, dns_wire_answer_cb cb, void *arg)
{
	unsigned char name[DNS_WIRE_NAME_MAX];
	struct dns_rr_iter it;
	struct dns_rr rr;
	int rc, hops = 0;
	long n = 0;

	memcpy(name, m->qname, sizeof(name));
	dns_rr_iter_init(&it, m);
	while ((rc = dns_rr_next(&it, &rr)) == 1 && rr.section == DNS_SEC_ANSWER) {
		if (rr.class != DNS_C_IN || !dns_wire_name_eq(rr.owner, name))
			continue;
		if (rr.type == m->qtype) {
			n++;
			if (cb(arg, m, &rr))
				return n;
		} else if (rr.type == DNS_T_CNAME && hops < DNS_WIRE_CHAIN_MAX) {
			if (dns_rr_cname(m, &rr, name) < 0)
				return -1;
			hops++;
		}
	}
	return rc < 0 ? -1 : n;
}

void dns_wire_ttls(const struct dns_wire *m, struct dns_wire_ttls *t)
{
	struct dns_rr_iter it;
	struct dns_rr rr;
	uint32_t min;

	t->answer_min = t->soa_neg = UINT32_MAX;
	dns_rr_iter_init(&it, m);
	while (dns_rr_next(&it, &rr) == 1 && rr.section != DNS_SEC_ADDITIONAL) {
		if (rr.section == DNS_SEC_ANSWER && rr.ttl < t->answer_min)
			t->answer_min = rr.ttl;
		if (rr.section != DNS_SEC_AUTHORITY || rr.type != DNS_T_SOA ||
		    dns_rr_soa_minimum(m, &rr, &min) < 0)
			continue;
		if (min > 0x7FFFFFFFu)
			min = 0;
		min = rr.ttl < min ? rr.ttl : min;
		if (min < t->soa_neg)
			t->soa_neg = min;
	}
}
