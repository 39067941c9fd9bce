/*
 * tls_policy: per-host TLS requirements from the destination's policies,
 * and the TLS-RPT result names. PURE; the contract and the precedence are
 * in tls_policy.h.
 */
#include "tls/tls_policy.h"

#include <stdlib.h>
#include <string.h>

#include "util/util.h"

#define STS_TESTING 1
#define STS_ENFORCE 2

const char *tls_pol_name(enum tls_pol p)
{
	static const char *const names[] = {"none", "mta-sts", "dane", "requiretls"};
	return (unsigned)p < ARRAY_LEN(names) ? names[p] : "none";
}

static const char *const result_names[TLSRPT__COUNT] = {
    [TLSRPT_OK] = "",
    [TLSRPT_STARTTLS_NOT_SUPPORTED] = "starttls-not-supported",
    [TLSRPT_CERT_HOST_MISMATCH] = "certificate-host-mismatch",
    [TLSRPT_CERT_EXPIRED] = "certificate-expired",
    [TLSRPT_CERT_NOT_TRUSTED] = "certificate-not-trusted",
    [TLSRPT_VALIDATION_FAILURE] = "validation-failure",
    [TLSRPT_TLSA_INVALID] = "tlsa-invalid",
    [TLSRPT_DNSSEC_INVALID] = "dnssec-invalid",
    [TLSRPT_DANE_REQUIRED] = "dane-required",
    [TLSRPT_STS_POLICY_FETCH_ERROR] = "sts-policy-fetch-error",
    [TLSRPT_STS_POLICY_INVALID] = "sts-policy-invalid",
    [TLSRPT_STS_WEBPKI_INVALID] = "sts-webpki-invalid",
};

const char *tlsrpt_result_name(enum tlsrpt_result r)
{
	return (unsigned)r < TLSRPT__COUNT ? result_names[r] : "validation-failure";
}

int tlsrpt_result_parse(const char *name)
{
	for (int i = 0; i < TLSRPT__COUNT; i++)
		if (strcmp(name, result_names[i]) == 0)
			return i;
	return -1;
}

int tls_tlsa_usable(const struct tls_tlsa *t)
{
	static const size_t mlen[] = {0, 32, 64};

	if ((t->usage != 2 && t->usage != 3) || t->selector > 1 || t->mtype > 2 || t->len == 0)
		return 0;
	return t->mtype == 0 || t->len == mlen[t->mtype];
}

void tls_host_pol_clear(struct tls_host_pol *h)
{
	for (size_t i = 0; i < h->n_tlsa; i++)
		free(h->tlsa[i].data);
	free(h->tlsa);
	free(h->host);
	free(h->why);
	memset(h, 0, sizeof(*h));
}

static void copy_usable(struct tls_host_pol *out, const struct tls_tlsa *tlsa, size_t n)
{
	out->tlsa = xcalloc(n ? n : 1, sizeof(*out->tlsa));
	for (size_t i = 0; i < n; i++) {
		struct tls_tlsa *t;
		if (!tls_tlsa_usable(&tlsa[i]))
			continue;
		t = &out->tlsa[out->n_tlsa++];
		*t = tlsa[i];
		t->data = xmalloc(tlsa[i].len);
		memcpy(t->data, tlsa[i].data, tlsa[i].len);
	}
}

static void refuse(struct tls_host_pol *out, enum tlsrpt_result r, char *why)
{
	out->refuse = 1;
	out->refuse_result = r;
	out->why = why;
}

/* DANE decides: RFC 7672 2.2 and 3. */
static void decide_dane(const struct tls_decide_in *in, const struct tls_tlsa *tlsa, size_t n,
                        struct tls_host_pol *out)
{
	out->pol = TLS_POL_DANE;
	out->tls_required = 1;
	if (in->dane == TLS_DANE_FAILED) {
		refuse(out, TLSRPT_DNSSEC_INVALID,
		       xasprintf("DANE: the TLSA lookup for _25._tcp.%s failed", in->host));
		return;
	}
	if (in->dane == TLS_DANE_USABLE)
		copy_usable(out, tlsa, n);
	/* records but none usable: encrypted, not authenticated */
	out->verify_required = out->n_tlsa > 0;
}

static void decide_sts(const struct tls_decide_in *in, int sts_allowed, struct tls_host_pol *out)
{
	out->pol = TLS_POL_STS;
	if (in->sts_mode == STS_TESTING) {
		out->testing = 1;
		return;
	}
	out->tls_required = out->verify_required = 1;
	if (!sts_allowed)
		refuse(out, TLSRPT_VALIDATION_FAILURE,
		       xasprintf("MX host %s does not match the MTA-STS policy of %s (enforce)",
		                 in->host, in->domain));
}

/* RFC 8461 2: usable records, or a lookup that failed, decide over MTA-STS.
 * Records that are all unusable only make TLS mandatory: a policy in
 * enforce mode, which asks that and more, still holds. */
static int dane_decides(const struct tls_decide_in *in)
{
	if (in->dane == TLS_DANE_UNUSABLE)
		return in->sts_mode != STS_ENFORCE;
	return in->dane != TLS_DANE_NONE;
}

void tls_host_decide(const struct tls_decide_in *in, int sts_allowed, const struct tls_tlsa *tlsa,
                     size_t n, struct tls_host_pol *out)
{
	int optout = in->optout && !in->requiretls;

	memset(out, 0, sizeof(*out));
	out->host = xstrdup(in->host);
	out->tls_required = in->outbound_required;
	if (optout)
		return; /* RFC 8689 5: the sender prefers delivery to any policy */
	if (dane_decides(in))
		decide_dane(in, tlsa, n, out);
	else if (in->sts_mode == STS_TESTING || in->sts_mode == STS_ENFORCE)
		decide_sts(in, sts_allowed, out);
	if (!in->requiretls)
		return;
	/* REQUIRETLS: at least a WebPKI-verified certificate (RFC 8689 4.2.1) */
	out->requiretls = out->tls_required = out->verify_required = 1;
	out->testing = 0;
	if (out->pol == TLS_POL_NONE || (out->pol == TLS_POL_STS && in->sts_mode == STS_TESTING))
		out->pol = TLS_POL_REQUIRETLS;
}

struct tls_dest_pol *tls_dest_pol_new(const char *domain, size_t n_hosts)
{
	struct tls_dest_pol *p = xcalloc(1, sizeof(*p));

	p->refs = 1;
	p->domain = xstrdup(domain);
	p->hosts = xcalloc(n_hosts ? n_hosts : 1, sizeof(*p->hosts));
	p->n_hosts = n_hosts;
	return p;
}

struct tls_dest_pol *tls_dest_pol_ref(struct tls_dest_pol *p)
{
	if (p)
		p->refs++;
	return p;
}

void tls_dest_pol_unref(struct tls_dest_pol *p)
{
	if (!p || --p->refs > 0)
		return;
	for (size_t i = 0; i < p->n_hosts; i++)
		tls_host_pol_clear(&p->hosts[i]);
	if (p->report_data_free)
		p->report_data_free(p->report_data);
	free(p->hosts);
	free(p->domain);
	free(p);
}

const struct tls_host_pol *tls_dest_pol_host(const struct tls_dest_pol *p, size_t i,
                                             const char *name)
{
	if (!p)
		return NULL;
	if (i < p->n_hosts && p->hosts[i].host && ascii_casecmp(p->hosts[i].host, name) == 0)
		return &p->hosts[i];
	for (i = 0; i < p->n_hosts; i++)
		if (p->hosts[i].host && ascii_casecmp(p->hosts[i].host, name) == 0)
			return &p->hosts[i];
	return NULL;
}
