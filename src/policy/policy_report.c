/*
 * policy_report: a TLS-RPT report (RFC 8460) from the counts of one period
 * of one domain: the JSON of section 4, gzipped as section 5.1 asks, and
 * the message of section 5.3 that carries it by mail. No I/O: the
 * reporter (policy_rpt.c) runs it on the work pool.
 *
 * The counts keep each policy as the text of its JSON "policy" object
 * (rpt_policy_json), so rows of one policy group by that text; successes
 * are kept without addresses (they only add to the summary), failures
 * with them (failure-details).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <zlib.h>

#include "policy/policy_int.h"
#include "store/store.h"
#include "util/util.h"

#define MAIL_LINE 76 /* base64 characters per line */

/* ---------- the policy object ---------- */

static json_t *lines_of(const char *text)
{
	json_t *a = json_array();
	const char *p = text;

	while (*p) {
		size_t n = strcspn(p, "\n");
		size_t m = n && p[n - 1] == '\r' ? n - 1 : n;
		if (m)
			json_array_append_new(a, json_stringn(p, m));
		p += n + (p[n] == '\n');
	}
	return a;
}

static json_t *tlsa_strings(const struct tls_host_pol *h)
{
	json_t *a = json_array();

	for (size_t i = 0; i < h->n_tlsa; i++) {
		const struct tls_tlsa *t = &h->tlsa[i];
		struct buf b;
		buf_init(&b);
		buf_printf(&b, "%u %u %u ", t->usage, t->selector, t->mtype);
		for (size_t k = 0; k < t->len; k++)
			buf_printf(&b, "%02X", t->data[k]);
		json_array_append_new(a, json_string(b.data));
		buf_free(&b);
	}
	return a;
}

char *rpt_policy_json(const char *domain, const struct sts_snap *snap, const struct tls_host_pol *h)
{
	json_t *o = json_object(), *mx = json_array();
	char *text;

	json_object_set_new(o, "policy-domain", json_string(domain));
	if (h && h->pol == TLS_POL_DANE) {
		json_object_set_new(o, "policy-type", json_string("tlsa"));
		json_object_set_new(o, "policy-string", tlsa_strings(h));
		json_array_append_new(mx, json_string(h->host));
	} else if (snap && snap->pol.mode != STS_MODE_NONE) {
		json_object_set_new(o, "policy-type", json_string("sts"));
		json_object_set_new(o, "policy-string", lines_of(snap->text));
		for (size_t i = 0; i < snap->pol.n_mx; i++)
			json_array_append_new(mx, json_string(snap->pol.mx[i]));
	} else {
		json_object_set_new(o, "policy-type", json_string("no-policy-found"));
	}
	if (json_array_size(mx))
		json_object_set_new(o, "mx-host", mx);
	else
		json_decref(mx);
	text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(o);
	return text;
}

char *rpt_policy_json_sts_failed(const char *domain)
{
	json_t *o = json_object();
	char *text;

	json_object_set_new(o, "policy-domain", json_string(domain));
	json_object_set_new(o, "policy-type", json_string("sts"));
	json_object_set_new(o, "policy-string", json_array());
	text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(o);
	return text;
}

/* ---------- the report ---------- */

static void rfc3339(int64_t t, char *out, size_t cap)
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void set_nonempty(json_t *o, const char *key, const char *v)
{
	if (v && *v)
		json_object_set_new(o, key, json_string(v));
}

/* One "policies" entry: the rows [from, to) share one policy text. */
static json_t *policy_entry(const struct store_tlsrpt_row *rows, size_t from, size_t to)
{
	json_t *e = json_object(), *sum = json_object(), *details = json_array();
	json_int_t ok = 0, bad = 0;

	json_object_set_new(e, "policy", json_loads(rows[from].policy, 0, NULL));
	for (size_t i = from; i < to; i++) {
		const struct store_tlsrpt_row *r = &rows[i];
		json_t *d;
		if (!r->result[0]) {
			ok += (json_int_t)r->n;
			continue;
		}
		bad += (json_int_t)r->n;
		d = json_object();
		json_object_set_new(d, "result-type", json_string(r->result));
		set_nonempty(d, "sending-mta-ip", r->sending_ip);
		set_nonempty(d, "receiving-mx-hostname", r->mx_host);
		set_nonempty(d, "receiving-ip", r->receiving_ip);
		json_object_set_new(d, "failed-session-count", json_integer((json_int_t)r->n));
		json_array_append_new(details, d);
	}
	json_object_set_new(sum, "total-successful-session-count", json_integer(ok));
	json_object_set_new(sum, "total-failure-session-count", json_integer(bad));
	json_object_set_new(e, "summary", sum);
	if (json_array_size(details))
		json_object_set_new(e, "failure-details", details);
	else
		json_decref(details);
	return e;
}

static json_t *report_json(const char *submitter, const struct store_tlsrpt_row *rows, size_t n,
                           const char *report_id)
{
	json_t *o = json_object(), *range = json_object(), *pols = json_array();
	char t[32], *contact = xasprintf("mailto:postmaster@%s", submitter);

	json_object_set_new(o, "organization-name", json_string(submitter));
	rfc3339(rows[0].start, t, sizeof(t));
	json_object_set_new(range, "start-datetime", json_string(t));
	rfc3339(rows[0].end - 1, t, sizeof(t)); /* the last second of the period */
	json_object_set_new(range, "end-datetime", json_string(t));
	json_object_set_new(o, "date-range", range);
	json_object_set_new(o, "contact-info", json_string(contact));
	json_object_set_new(o, "report-id", json_string(report_id));
	for (size_t i = 0, j; i < n; i = j) {
		for (j = i + 1; j < n && strcmp(rows[j].policy, rows[i].policy) == 0; j++)
			;
		json_array_append_new(pols, policy_entry(rows, i, j));
	}
	json_object_set_new(o, "policies", pols);
	free(contact);
	return o;
}

static int gzip_bytes(const char *in, size_t n, unsigned char **out, size_t *out_len)
{
	z_stream z;
	uLong cap = compressBound((uLong)n) + 64;
	int rc;

	memset(&z, 0, sizeof(z));
	if (deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
	    Z_OK)
		return -1;
	*out = xmalloc(cap);
	z.next_in = (Bytef *)(uintptr_t)in;
	z.avail_in = (uInt)n;
	z.next_out = *out;
	z.avail_out = (uInt)cap;
	rc = deflate(&z, Z_FINISH);
	*out_len = z.total_out;
	deflateEnd(&z);
	if (rc != Z_STREAM_END) {
		free(*out);
		*out = NULL;
		return -1;
	}
	return 0;
}

int rpt_report_build(const char *submitter, const struct store_tlsrpt_row *rows, size_t n,
                     struct rpt_report *out, char **err)
{
	json_t *o;

	memset(out, 0, sizeof(*out));
	if (n == 0)
		return *err = xstrdup("no counts"), -1;
	out->report_id =
	    xasprintf("%lld.%s@%s", (long long)rows[0].start, rows[0].domain, submitter);
	out->filename = xasprintf("%s!%s!%lld!%lld!%lld.json.gz", submitter, rows[0].domain,
	                          (long long)rows[0].start, (long long)rows[0].end - 1,
	                          (long long)rows[0].start);
	o = report_json(submitter, rows, n, out->report_id);
	out->json = json_dumps(o, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
	json_decref(o);
	if (!out->json || gzip_bytes(out->json, strlen(out->json), &out->gz, &out->gz_len) < 0) {
		rpt_report_clear(out);
		return *err = xstrdup("cannot encode the report"), -1;
	}
	return 0;
}

void rpt_report_clear(struct rpt_report *r)
{
	free(r->json);
	free(r->gz);
	free(r->report_id);
	free(r->filename);
	memset(r, 0, sizeof(*r));
}

/* ---------- the message ---------- */

static void base64_lines(struct buf *b, const unsigned char *p, size_t n)
{
	char *text = xmalloc(base64_encoded_len(n) + 1);
	size_t len = base64_encode(p, n, text);

	for (size_t i = 0; i < len; i += MAIL_LINE)
		buf_printf(b, "%.*s\r\n", (int)(len - i < MAIL_LINE ? len - i : MAIL_LINE),
		           text + i);
	free(text);
}

static void mail_head(struct buf *b, const char *submitter, const char *domain, const char *to,
                      const struct rpt_report *r, int64_t now, const char *boundary)
{
	char date[64];

	rfc5322_date(date, sizeof(date), now);
	buf_printf(b, "From: TLS reporting <postmaster@%s>\r\n", submitter);
	buf_printf(b, "To: <%s>\r\n", to);
	buf_printf(b, "Date: %s\r\n", date);
	buf_printf(b, "Subject: Report Domain: %s Submitter: %s Report-ID: <%s>\r\n", domain,
	           submitter, r->report_id);
	buf_printf(b, "Message-ID: <%s.%s>\r\n", boundary, r->report_id);
	buf_printf(b, "TLS-Report-Domain: %s\r\nTLS-Report-Submitter: %s\r\n", domain, submitter);
	/* RFC 8460 5.3 and RFC 8689 5: a report must reach a domain whose TLS
	 * is broken, which is when it matters */
	buf_puts(b, "TLS-Required: No\r\nMIME-Version: 1.0\r\n");
	buf_printf(b,
	           "Content-Type: multipart/report; report-type=\"tlsrpt\";\r\n"
	           " boundary=\"%s\"\r\n\r\n",
	           boundary);
}

char *rpt_report_mail(const char *submitter, const char *domain, const char *to,
                      const struct rpt_report *r, int64_t now, size_t *len)
{
	unsigned char rnd[12];
	char boundary[40];
	struct buf b;

	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		memset(rnd, 0x5a, sizeof(rnd));
	snprintf(boundary, sizeof(boundary), "tlsrpt-");
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(boundary + 7 + 2 * i, 3, "%02x", rnd[i]);
	buf_init(&b);
	mail_head(&b, submitter, domain, to, r, now, boundary);
	buf_printf(&b, "--%s\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n", boundary);
	buf_printf(&b, "This is an aggregate TLS report (RFC 8460) from %s for %s.\r\n\r\n",
	           submitter, domain);
	buf_printf(&b, "--%s\r\nContent-Type: application/tlsrpt+gzip\r\n", boundary);
	buf_printf(&b,
	           "Content-Transfer-Encoding: base64\r\n"
	           "Content-Disposition: attachment;\r\n filename=\"%s\"\r\n\r\n",
	           r->filename);
	base64_lines(&b, r->gz, r->gz_len);
	buf_printf(&b, "\r\n--%s--\r\n", boundary);
	*len = b.len;
	return b.data;
}
