/*
 * policy_parse: the text formats of the outbound TLS policies. PURE (libc
 * and util only): bytes in, a parsed value or a refusal out; unit-tested
 * (tests/unit/test_policy_parse.c) and fuzzed (fuzz/fuzz_policy_parse.c).
 *
 *   _mta-sts TXT    RFC 8461 3.1: "v=STSv1; id=...;" picks the one record
 *   MTA-STS policy  RFC 8461 3.2: the body of .well-known/mta-sts.txt
 *   mx patterns     RFC 8461 4.1: "mx.example.com" or "*.example.com"
 *   _smtp._tls TXT  RFC 8460 3: "v=TLSRPTv1; rua=mailto:...,https://..."
 *   TLS-Required    RFC 8689 5: the sender's "TLS-Required: No" header
 *
 * Every result is bounded: a policy keeps at most STS_MX_MAX patterns, a
 * report record at most TLSRPT_RUA_MAX addresses, and input beyond the
 * documented sizes is refused, never cut and guessed at.
 */
#ifndef POSTHORN_POLICY_PARSE_H
#define POSTHORN_POLICY_PARSE_H

#include <stddef.h>
#include <stdint.h>

#define STS_ID_MAX        32       /* RFC 8461 3.1: 1*32(ALPHA / DIGIT) */
#define STS_POLICY_MAX    65536    /* bytes of a policy body (RFC 8461 3.3: 64 KiB) */
#define STS_MX_MAX        64       /* mx patterns kept from one policy */
#define STS_MAX_AGE_LIMIT 31557600 /* RFC 8461 3.2: at most a year */
#define TLSRPT_RUA_MAX    8        /* report addresses kept from one record */
#define TLSRPT_RUA_LEN    1024     /* bytes of one address */

/*
 * From the TXT records of _mta-sts.DOMAIN: the one that starts "v=STSv1;"
 * (others are ignored). 1 with its id in id (STS_ID_MAX + 1 bytes) when
 * exactly one such record exists and it is well formed; 0 otherwise: the
 * domain then has no MTA-STS policy (RFC 8461 3.1).
 */
int sts_txt_pick(const char *const *records, size_t n, char *id);

enum sts_mode { STS_MODE_NONE, STS_MODE_TESTING, STS_MODE_ENFORCE };

struct sts_policy {
	enum sts_mode mode;
	uint32_t max_age; /* seconds */
	char *mx[STS_MX_MAX];
	size_t n_mx;
};

/*
 * Parses a policy body (text, n bytes, at most STS_POLICY_MAX; lines end
 * in LF or CRLF). version: STSv1, mode and max_age are required, and at
 * least one mx unless mode is none; unknown keys are ignored; of a key
 * given twice (but mx) the first counts. 0 and *p filled (free with
 * sts_policy_clear), or -1 with *why a static reason.
 */
int sts_policy_parse(const char *text, size_t n, struct sts_policy *p, const char **why);
void sts_policy_clear(struct sts_policy *p);
const char *sts_mode_name(enum sts_mode m); /* "none", "testing", "enforce" */

/* 1 if MX host name host (no trailing dot, any case) matches pattern: the
 * same name, or for "*.rest" any name of exactly one more label. */
int sts_mx_match(const char *pattern, const char *host);
/* 1 if host matches one of p's patterns. */
int sts_policy_allows(const struct sts_policy *p, const char *host);

enum tlsrpt_rua_kind { TLSRPT_RUA_MAILTO, TLSRPT_RUA_HTTPS };
struct tlsrpt_rua {
	enum tlsrpt_rua_kind kind;
	char uri[TLSRPT_RUA_LEN];  /* as published: "mailto:x@y" or "https://..." */
	char addr[TLSRPT_RUA_LEN]; /* mailto: the address (query part dropped) */
};
struct tlsrpt_record {
	struct tlsrpt_rua rua[TLSRPT_RUA_MAX];
	size_t n_rua;
};

/*
 * From the TXT records of _smtp._tls.DOMAIN: the one that starts
 * "v=TLSRPTv1" with a rua of mailto: and https: addresses (others, and
 * addresses Posthorn cannot use, are left out). 1 and *out filled when
 * exactly one such record exists with at least one usable address; 0
 * otherwise (no reports for the domain).
 */
int tlsrpt_txt_pick(const char *const *records, size_t n, struct tlsrpt_record *out);

/*
 * 1 if the header section hdr[0..n) (a message's bytes up to the empty
 * line, or a prefix of them) holds a "TLS-Required:" field whose value is
 * "No" (any case, folding and surrounding white space allowed). The scan
 * stops at the empty line that ends the headers.
 */
int tls_required_no(const char *hdr, size_t n);

#endif
