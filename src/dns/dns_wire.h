/*
 * dns_wire: reading a DNS reply's bytes (RFC 1035 section 4.1). PURE: libc
 * and util only, no c-ares, no sockets; dns.c hands it the reply c-ares
 * received, the unit tests and fuzz/fuzz_dns_wire.c hand it anything.
 *
 * The only code that reads raw reply bytes. It promises, for any input:
 * every read is bounds-checked against the message; a compressed name is
 * followed only through pointers that point backwards, so it always ends;
 * a name is at most 255 bytes in wire form (DNS_WIRE_NAME_MAX); and a
 * malformed part is reported (-1), never guessed at.
 *
 * Layers, each usable alone:
 *   message - dns_wire_parse(): the header (ID, flags such as AD, counts)
 *             and the one question.
 *   records - dns_rr_next(): every resource record in order, with its
 *             section, type, class, TTL and where its rdata lies.
 *   rdata   - dns_rr_mx/a/aaaa/txt/soa/tlsa/cname(): one record's data.
 *   answers - dns_wire_answers(): the records that answer the question
 *             (its type and class IN, owned by the question name or by a
 *             name of the CNAME chain that starts there), and
 *             dns_wire_ttls(): how long the reply may be cached.
 *
 * Names come out in wire form without compression ("flat": length-prefixed
 * labels, ending with the root's 0), compared with dns_wire_name_eq(), or as
 * text with dns_wire_name_text().
 */
#ifndef POSTHORN_DNS_WIRE_H
#define POSTHORN_DNS_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "util/util.h"

#define DNS_WIRE_HDR_SIZE 12
#define DNS_WIRE_NAME_MAX 255 /* bytes of a flat name, RFC 1035 3.1 */
/* Text of a name: every label byte may need a 4-byte escape "\DDD". */
#define DNS_WIRE_TEXT_MAX (4 * DNS_WIRE_NAME_MAX + 1)
/* CNAMEs followed from the question name before giving up on a chain. */
#define DNS_WIRE_CHAIN_MAX 16

/* Types and classes the relay reads (RFC 1035, 3596, 6698). */
enum {
	DNS_T_A = 1,
	DNS_T_CNAME = 5,
	DNS_T_SOA = 6,
	DNS_T_MX = 15,
	DNS_T_TXT = 16,
	DNS_T_AAAA = 28,
	DNS_T_TLSA = 52,
	DNS_C_IN = 1
};

/* Header flags (the 16-bit word after the ID). */
#define DNS_WIRE_QR 0x8000u
#define DNS_WIRE_TC 0x0200u
#define DNS_WIRE_AD 0x0020u /* RFC 4035 3.2.3: the resolver validated it */

/* A parsed message: header and question. Points into the bytes it was
 * parsed from, which must outlive it. */
struct dns_wire {
	const unsigned char *p;
	size_t len;
	unsigned id, flags, rcode;
	unsigned qdcount, ancount, nscount, arcount;
	unsigned char qname[DNS_WIRE_NAME_MAX]; /* flat */
	unsigned qtype, qclass;
	size_t rr_off; /* where the answer section starts */
};

/* 0 and *m set, or -1: shorter than a header, not exactly one question,
 * or a malformed question. */
int dns_wire_parse(struct dns_wire *m, const unsigned char *p, size_t len);

/* 1 if the AD bit is set. Meaningful only from a resolver the relay trusts
 * to validate, over a path it trusts (RFC 6698 4.1, RFC 7671). */
int dns_wire_ad(const struct dns_wire *m);

enum dns_section { DNS_SEC_ANSWER, DNS_SEC_AUTHORITY, DNS_SEC_ADDITIONAL };

/* One resource record. owner is flat; rdata is p[rdata_off, +rdlen). */
struct dns_rr {
	enum dns_section section;
	unsigned char owner[DNS_WIRE_NAME_MAX];
	unsigned type, class;
	uint32_t ttl; /* RFC 2181 8: a TTL with the top bit set reads as 0 */
	size_t rdata_off, rdlen;
};

/* Walks the records of all three sections in order. */
struct dns_rr_iter {
	const struct dns_wire *m;
	size_t off;
	unsigned i; /* records read so far */
};
void dns_rr_iter_init(struct dns_rr_iter *it, const struct dns_wire *m);
/* 1 and *rr set, 0 after the last record, -1 at a malformed one (and on
 * every call after it). */
int dns_rr_next(struct dns_rr_iter *it, struct dns_rr *rr);

/*
 * Names. dns_wire_name() reads the (possibly compressed) name at off into
 * out (flat, at most DNS_WIRE_NAME_MAX bytes); *next is where the name ends
 * in place. -1: out of bounds, a pointer that does not point backwards, a
 * label that is neither plain nor a pointer (the other two kinds are
 * obsolete or reserved: RFC 6891 5), or over 255 bytes.
 */
int dns_wire_name(const struct dns_wire *m, size_t off, unsigned char *out, size_t *next);
/* 1 if flat names a and b are equal, ASCII case ignored (RFC 4343). */
int dns_wire_name_eq(const unsigned char *a, const unsigned char *b);
/* Text of flat name: labels joined by '.', no trailing dot, "" for the
 * root. Bytes other than letters, digits, '-' and '_' are written "\DDD"
 * (decimal), so no name can pass for another, and dns_name_canon() refuses
 * such a name. out holds DNS_WIRE_TEXT_MAX bytes. */
void dns_wire_name_text(const unsigned char *flat, char *out);

/* Rdata readers: 0 and the fields set, -1 when the rdata does not have the
 * type's shape (wrong length, a bad name). They do not check rr->type. */
int dns_rr_a(const struct dns_wire *m, const struct dns_rr *rr, unsigned char out[4]);
int dns_rr_aaaa(const struct dns_wire *m, const struct dns_rr *rr, unsigned char out[16]);
/* MX: preference and exchange (flat). */
int dns_rr_mx(const struct dns_wire *m, const struct dns_rr *rr, unsigned *pref,
              unsigned char *exchange);
int dns_rr_cname(const struct dns_wire *m, const struct dns_rr *rr, unsigned char *target);
/* TXT: the record's character-strings joined (RFC 7208 3.3), appended to
 * out; may hold NUL bytes (out->len counts them). */
int dns_rr_txt(const struct dns_wire *m, const struct dns_rr *rr, struct buf *out);
/* SOA: the MINIMUM field (RFC 2308 4: the negative-caching TTL). */
int dns_rr_soa_minimum(const struct dns_wire *m, const struct dns_rr *rr, uint32_t *minimum);

/* TLSA (RFC 6698 2.1): the three one-byte fields and the association data,
 * which points into the message. The reader checks only the shape (at
 * least one byte of data); whether a record is usable (known usage,
 * selector and matching type, a digest of the right length: RFC 7671 5)
 * is dns_tlsa_usable()'s call. */
struct dns_tlsa {
	unsigned usage, selector, mtype;
	const unsigned char *data;
	size_t len;
};
int dns_rr_tlsa(const struct dns_wire *m, const struct dns_rr *rr, struct dns_tlsa *t);
/* 1 for usage 0..3, selector 0..1, and matching type 0 (any length), 1
 * (SHA-256, 32 bytes) or 2 (SHA-512, 64 bytes). */
int dns_tlsa_usable(const struct dns_tlsa *t);

/*
 * The answer records: each record of the answer section with the
 * question's type and class IN whose owner is the name being followed:
 * the question name, then, after a CNAME owned by it, the CNAME's target
 * (at most DNS_WIRE_CHAIN_MAX links, read in order, as servers write
 * them). cb returns nonzero to stop early. Returns the number of records
 * passed to cb, or -1 if the answer section is malformed (records before
 * the fault may have been passed already).
 */
typedef int (*dns_wire_answer_cb)(void *arg, const struct dns_wire *m, const struct dns_rr *rr);
long dns_wire_answers(const struct dns_wire *m, dns_wire_answer_cb cb, void *arg);

/*
 * How long a reply may be cached, before any cap: answer_min is the lowest
 * TTL of the answer section's records (CNAMEs included), soa_neg the
 * lowest min(TTL, MINIMUM) of the authority section's SOA records (RFC 2308
 * 5). UINT32_MAX for "none there". Records after a malformed one are not
 * read; what came before counts.
 */
struct dns_wire_ttls {
	uint32_t answer_min;
	uint32_t soa_neg;
};
void dns_wire_ttls(const struct dns_wire *m, struct dns_wire_ttls *t);

#endif
