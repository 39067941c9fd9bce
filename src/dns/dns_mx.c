/*
 * dns_mx: MX ordering, implicit and null MX, address interleaving, and the
 * route type's lifetime. PURE (libc + util): every rule here is tested
 * without a DNS server in tests/unit/test_dns_mx.c. The rules themselves
 * are listed in dns_mx.h.
 */
#include "dns/dns_mx.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "util/util.h"

const char *dns_status_name(enum dns_status s)
{
	switch (s) {
	case DNS_OK:
		return "ok";
	case DNS_NXDOMAIN:
		return "nxdomain";
	case DNS_NODATA:
		return "nodata";
	case DNS_TEMPFAIL:
		return "tempfail";
	case DNS_CANCELLED:
		return "cancelled";
	}
	return "unknown";
}

const char *dns_addr_str(const struct dns_addr *a, char *out)
{
	if (!inet_ntop(a->family, a->addr, out, DNS_ADDR_STRLEN))
		strcpy(out, "?");
	return out;
}

static int label_byte_ok(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

int dns_name_canon(const char *name, char *out, size_t cap)
{
	size_t n = strlen(name), i, label = 0;

	if (n > 0 && name[n - 1] == '.')
		n--;
	if (n == 0 || n > 253 || n + 1 > cap)
		return -1;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];

		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c - 'A' + 'a');
		if (c == '.') {
			if (label == 0)
				return -1;
			label = 0;
		} else if (!label_byte_ok(c) || ++label > 63) {
			return -1;
		}
		out[i] = (char)c;
	}
	out[n] = '\0';
	return 0;
}

/* The root: what RFC 7505 puts in a null MX. c-ares gives "" for it. */
static int is_root(const char *exchange)
{
	return exchange[0] == '\0' || strcmp(exchange, ".") == 0;
}

/* Ties broken by name so that the order before shuffling is reproducible
 * (qsort is not stable) and duplicates end up side by side. */
static int by_pref(const void *a, const void *b)
{
	const struct dns_route_host *x = a, *y = b;

	if (x->pref != y->pref)
		return x->pref < y->pref ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* Fisher-Yates inside each run of equal preference (hosts are sorted). */
static void shuffle_equal(struct dns_route_host *h, size_t n, dns_rand_fn rnd, void *arg)
{
	size_t start = 0, end, i;

	while (start < n) {
		for (end = start + 1; end < n && h[end].pref == h[start].pref; end++)
			;
		for (i = end - 1; i > start; i--) {
			size_t j = start + rnd(arg, (uint32_t)(i - start + 1));
			struct dns_route_host t = h[i];

			h[i] = h[j];
			h[j] = t;
		}
		start = end;
	}
}

/* Hosts are sorted, so the first copy of a name has its lowest preference. */
static size_t dedup(struct dns_route_host *h, size_t n)
{
	size_t i, j, out = 0;

	for (i = 0; i < n; i++) {
		for (j = 0; j < out && strcmp(h[j].name, h[i].name) != 0; j++)
			;
		if (j < out)
			free(h[i].name);
		else
			h[out++] = h[i];
	}
	return out;
}

static void set_hosts(struct dns_route *r, const struct dns_mx_rr *rr, size_t n, dns_rand_fn rnd,
                      void *rnd_arg)
{
	char name[256];
	size_t i, roots = 0;

	r->status = DNS_OK;
	r->hosts = xcalloc(n, sizeof *r->hosts);
	for (i = 0; i < n; i++) {
		if (is_root(rr[i].exchange))
			roots++;
		else if (dns_name_canon(rr[i].exchange, name, sizeof name) == 0)
			r->hosts[r->n_hosts++] = (struct dns_route_host){
			    .name = xstrdup(name), .pref = rr[i].pref, .addr_status = DNS_NODATA};
	}
	qsort(r->hosts, r->n_hosts, sizeof *r->hosts, by_pref);
	r->n_hosts = dedup(r->hosts, r->n_hosts);
	/* Shuffle before capping, so the cut falls at random inside a tie. */
	shuffle_equal(r->hosts, r->n_hosts, rnd, rnd_arg);
	while (r->n_hosts > DNS_MAX_HOSTS)
		free(r->hosts[--r->n_hosts].name);
	if (r->n_hosts > 0)
		return;
	r->status = DNS_NODATA;
	r->null_mx = roots == n;
	r->error = r->null_mx ? "domain publishes a null MX (RFC 7505): it accepts no mail"
	                      : "no usable MX host name";
}

/* RFC 5321 5.1: without MX records the domain is its own (only) host. */
static void set_implicit(struct dns_route *r, const char *domain)
{
	char name[256];

	if (dns_name_canon(domain, name, sizeof name) < 0) {
		r->status = DNS_NXDOMAIN;
		r->error = "invalid domain name";
		return;
	}
	r->status = DNS_OK;
	r->implicit_mx = 1;
	r->n_hosts = 1;
	r->hosts = xcalloc(1, sizeof *r->hosts);
	r->hosts[0] = (struct dns_route_host){.name = xstrdup(name), .addr_status = DNS_NODATA};
}

static const char *mx_failure_text(enum dns_status s)
{
	if (s == DNS_NXDOMAIN)
		return "domain does not exist";
	if (s == DNS_TEMPFAIL)
		return "MX lookup failed temporarily";
	return "lookup cancelled";
}

void dns_route_plan(struct dns_route *r, const char *domain, enum dns_status mx_status,
                    const struct dns_mx_rr *rr, size_t n, dns_rand_fn rnd, void *rnd_arg)
{
	memset(r, 0, sizeof *r);
	if (mx_status == DNS_OK && n > 0) {
		set_hosts(r, rr, n, rnd, rnd_arg);
	} else if (mx_status == DNS_OK || mx_status == DNS_NODATA) {
		set_implicit(r, domain);
	} else {
		r->status = mx_status;
		r->error = mx_failure_text(mx_status);
	}
}

/* The worse of two failures, for a host with no address at all. */
static enum dns_status addr_failure(enum dns_status a, enum dns_status b)
{
	if (a == DNS_CANCELLED || b == DNS_CANCELLED)
		return DNS_CANCELLED;
	if (a == DNS_TEMPFAIL || b == DNS_TEMPFAIL)
		return DNS_TEMPFAIL;
	if (a == DNS_NXDOMAIN || b == DNS_NXDOMAIN)
		return DNS_NXDOMAIN;
	return DNS_NODATA;
}

void dns_route_host_addrs(struct dns_route_host *h, enum dns_status st4, const struct dns_addr *v4,
                          size_t n4, enum dns_status st6, const struct dns_addr *v6, size_t n6)
{
	size_t i4 = 0, i6 = 0;

	if (st4 != DNS_OK)
		n4 = 0;
	if (st6 != DNS_OK)
		n6 = 0;
	free(h->addrs);
	h->n_addrs = 0;
	h->addrs =
	    n4 + n6 ? xcalloc(n4 + n6 < DNS_MAX_ADDRS ? n4 + n6 : DNS_MAX_ADDRS, sizeof *h->addrs)
	            : NULL;
	while (h->n_addrs < DNS_MAX_ADDRS && (i4 < n4 || i6 < n6)) {
		if (i6 < n6)
			h->addrs[h->n_addrs++] = v6[i6++];
		if (i4 < n4 && h->n_addrs < DNS_MAX_ADDRS)
			h->addrs[h->n_addrs++] = v4[i4++];
	}
	h->addr_status = h->n_addrs > 0 ? DNS_OK : addr_failure(st4, st6);
}

void dns_route_finish(struct dns_route *r)
{
	enum dns_status worst = DNS_NODATA;
	size_t i;

	if (r->status != DNS_OK)
		return;
	for (i = 0; i < r->n_hosts; i++) {
		if (r->hosts[i].n_addrs > 0)
			return;
		worst = addr_failure(worst, r->hosts[i].addr_status);
	}
	/* A name that does not exist is as permanent as one without addresses. */
	r->status = worst == DNS_NXDOMAIN ? DNS_NODATA : worst;
	if (r->status == DNS_TEMPFAIL)
		r->error = "address lookup of every MX host failed temporarily";
	else if (r->status == DNS_CANCELLED)
		r->error = "lookup cancelled";
	else if (r->implicit_mx)
		r->error = "domain has no MX and no address records";
	else
		r->error = "no MX host has an address record";
}

struct dns_route *dns_route_dup(const struct dns_route *r)
{
	struct dns_route *c = xmalloc(sizeof *c);
	size_t i;

	*c = *r;
	c->hosts = r->n_hosts ? xcalloc(r->n_hosts, sizeof *c->hosts) : NULL;
	for (i = 0; i < r->n_hosts; i++) {
		const struct dns_route_host *h = &r->hosts[i];

		c->hosts[i] = *h;
		c->hosts[i].name = xstrdup(h->name);
		c->hosts[i].addrs = NULL;
		if (h->n_addrs) {
			c->hosts[i].addrs = xcalloc(h->n_addrs, sizeof *h->addrs);
			memcpy(c->hosts[i].addrs, h->addrs, h->n_addrs * sizeof *h->addrs);
		}
	}
	return c;
}

void dns_route_clear(struct dns_route *r)
{
	size_t i;

	for (i = 0; i < r->n_hosts; i++) {
		free(r->hosts[i].name);
		free(r->hosts[i].addrs);
	}
	free(r->hosts);
	memset(r, 0, sizeof *r);
}

void dns_route_free(struct dns_route *r)
{
	if (!r)
		return;
	dns_route_clear(r);
	free(r);
}
