/*
 * cluster_url: parses `[cluster] redis`, and masks the passwords of any
 * URL for messages. PURE. Contract in cluster_url.h.
 */
#include "cluster/cluster_url.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

#define PREFIX "redis://"

/* Digits only, at most max; -1 otherwise. */
static long number(const char *p, size_t n, long max)
{
	long v = 0;

	if (!n || n > 5)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		v = v * 10 + (p[i] - '0');
	}
	return v > max ? -1 : v;
}

static int host_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_';
}

/* HOST from p (n bytes, brackets included for IPv6) into out. */
static const char *parse_host(const char *p, size_t n, struct cluster_url *out)
{
	int v6 = n >= 2 && p[0] == '[' && p[n - 1] == ']';

	if (v6) {
		p++;
		n -= 2;
	}
	if (!n || n > CLUSTER_HOST_MAX)
		return "expected a host name or address after redis://";
	for (size_t i = 0; i < n; i++)
		if (!(v6 ? (p[i] == ':' || host_char(p[i])) : host_char(p[i])))
			return "the host has a character a host name or address cannot have";
	memcpy(out->host, p, n);
	out->host[n] = '\0';
	return NULL;
}

/* A hex digit's value, -1 for anything else. */
static int hex_value(char c)
{
	static const char digits[] = "0123456789abcdef";
	const char *p = c ? strchr(digits, tolower((unsigned char)c)) : NULL;

	return p ? (int)(p - digits) : -1;
}

/* Percent-decodes p (n bytes) into out (max bytes and a NUL): 0, or -1 for
 * a bad %XX, a decoded NUL, a byte that is not printable ASCII, or more
 * than max bytes. */
static int decode(const char *p, size_t n, char *out, size_t max)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)p[i];

		if (c == '%') {
			int hi = i + 2 < n ? hex_value(p[i + 1]) : -1;
			int lo = hi >= 0 ? hex_value(p[i + 2]) : -1;

			if (lo < 0 || (c = hi * 16 + lo) == 0)
				return -1;
			i += 2;
		} else if (c <= ' ' || c > '~') {
			return -1;
		}
		if (o == max)
			return -1;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return 0;
}

/* [USER]:PASSWORD of a (n bytes, before the '@'). */
static const char *parse_userinfo(const char *a, size_t n, struct cluster_url *out)
{
	const char *colon = memchr(a, ':', n);

	if (!colon)
		return "expected [USER]:PASSWORD@ before the host (a user needs a password)";
	if (decode(a, (size_t)(colon - a), out->user, CLUSTER_USER_MAX) < 0)
		return "the user name is too long or has a bad character or %XX escape "
		       "(percent-encode it)";
	if (decode(colon + 1, n - (size_t)(colon + 1 - a), out->password, CLUSTER_PASSWORD_MAX) < 0)
		return "the password is too long or has a bad character or %XX escape "
		       "(percent-encode it)";
	if (!out->password[0])
		return "the password after [USER]: is empty";
	return NULL;
}

/* [[USER]:PASSWORD@]HOST[:PORT] of authority (n bytes). */
static const char *parse_authority(const char *a, size_t n, struct cluster_url *out)
{
	const char *colon = NULL, *at = NULL, *why;
	long port;

	for (size_t i = n; i > 0 && !at; i--)
		if (a[i - 1] == '@')
			at = a + i - 1;
	if (at) {
		if ((why = parse_userinfo(a, (size_t)(at - a), out)))
			return why;
		n -= (size_t)(at + 1 - a);
		a = at + 1;
	}
	for (size_t i = n; i > 0; i--) {
		if (a[i - 1] == ']')
			break;
		if (a[i - 1] == ':') {
			colon = a + i - 1;
			break;
		}
	}
	if (!colon)
		return parse_host(a, n, out);
	port = number(colon + 1, n - (size_t)(colon + 1 - a), 65535);
	if (port < 1)
		return "expected a port from 1 to 65535 after the host";
	out->port = (int)port;
	return parse_host(a, (size_t)(colon - a), out);
}

int cluster_url_parse(const char *s, struct cluster_url *out, const char **why)
{
	const char *a, *slash;
	long db = 0;

	memset(out, 0, sizeof(*out));
	out->port = 6379;
	*why = NULL;
	if (ascii_ncasecmp(s, "rediss://", 9) == 0) {
		*why = "rediss:// (TLS) is not supported: the Redis client library Posthorn is "
		       "built with has no TLS; use redis:// over loopback or a private network";
		return -1;
	}
	if (ascii_ncasecmp(s, PREFIX, strlen(PREFIX)) != 0) {
		*why = "expected a URL redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]";
		return -1;
	}
	a = s + strlen(PREFIX);
	slash = strchr(a, '/');
	if (slash && slash[1] && (db = number(slash + 1, strlen(slash + 1), 15)) < 0)
		*why = "expected a database number from 0 to 15 after the '/'";
	if (!*why && strpbrk(a, "?#"))
		*why = "query and fragment are not supported in the Redis URL";
	if (!*why)
		*why = parse_authority(a, slash ? (size_t)(slash - a) : strlen(a), out);
	out->db = (int)db;
	if (*why) /* nothing of a refused URL is kept, above all not its password */
		memset(out, 0, sizeof(*out));
	return *why ? -1 : 0;
}

void cluster_url_show(const struct cluster_url *u, char out[CLUSTER_URL_SHOW_MAX])
{
	int v6 = strchr(u->host, ':') != NULL;

	snprintf(out, CLUSTER_URL_SHOW_MAX, "redis://%s%s%s%s%s:%d/%d", u->user,
	         u->user[0] ? "@" : "", v6 ? "[" : "", u->host, v6 ? "]" : "", u->port, u->db);
}

/* ---- masking ---- */

#define MASK "****"

/* 1 if p (n bytes) is 1 to 5 digits: a port, not a password. */
static int port_like(const char *p, size_t n)
{
	return number(p, n, 99999) >= 0;
}

/* In an authority without '@' (up to '/', '?' or '#'), the first ':' not
 * followed by a port: each of its comma-separated hosts (several for
 * PostgreSQL) is HOST or HOST:PORT, an IPv6 address in brackets. NULL
 * when there is none. */
static const char *password_colon(const char *a)
{
	const char *end = a + strcspn(a, "/?#");

	for (const char *h = a; h < end;) {
		size_t n = (size_t)(end - h), len = strcspn(h, ",");
		const char *close = h[0] == '[' ? memchr(h, ']', len < n ? len : n) : NULL;
		const char *from = close ? close + 1 : h, *colon;

		len = len < n ? len : n;
		colon = memchr(from, ':', len - (size_t)(from - h));
		if (colon && !port_like(colon + 1, len - (size_t)(colon + 1 - h)))
			return colon;
		h += len + 1;
	}
	return NULL;
}

/* The length of a "password=" at p, the letters of the name as written or
 * %XX (any case: the client library decodes names); 0 if there is none. */
static size_t password_key(const char *p)
{
	static const char name[] = "password";
	const char *q = p;

	for (const char *k = name; *k; k++) {
		int c = (unsigned char)*q, hi = c == '%' ? hex_value(q[1]) : -1;
		int lo = hi >= 0 ? hex_value(q[2]) : -1;

		if (lo >= 0) {
			c = hi * 16 + lo;
			q += 2;
		}
		if (!c || tolower(c) != *k)
			return 0;
		q++;
	}
	return *q == '=' ? (size_t)(q + 1 - p) : 0;
}

/* s into out, the value of every "password=" (any case, its name's
 * letters written or %XX) masked up to the next '&' or '#'. */
static void put_query_masked(struct buf *out, const char *s)
{
	const char *p = s;

	for (const char *q = s; *q; q++) {
		size_t key = password_key(q);

		if (!key)
			continue;
		q += key;
		buf_append(out, p, (size_t)(q - p));
		buf_puts(out, MASK);
		p = q + strcspn(q, "&#");
		q = p - 1;
	}
	buf_puts(out, p);
}

char *cluster_url_mask(const char *s, int bare)
{
	const char *scheme = strstr(s, "://");
	const char *a = scheme ? scheme + 3 : bare ? s : NULL, *at, *colon;
	struct buf out;

	if (!a)
		return xstrdup(s);
	buf_init(&out);
	buf_append(&out, s, (size_t)(a - s));
	if ((at = strrchr(a, '@'))) { /* USER:PASSWORD@ or PASSWORD@ */
		colon = memchr(a, ':', (size_t)(at - a));
		if (colon)
			buf_append(&out, a, (size_t)(colon + 1 - a));
		buf_puts(&out, MASK);
		put_query_masked(&out, at);
	} else if ((colon = password_colon(a))) {
		/* USER:PASSWORD without @HOST: the rest may all be the password */
		buf_append(&out, a, (size_t)(colon + 1 - a));
		buf_puts(&out, MASK);
	} else {
		put_query_masked(&out, a);
	}
	return out.data;
}

const char *cluster_url_userinfo_why(const char *s)
{
	const char *scheme = strstr(s, "://"), *a = scheme ? scheme + 3 : s;
	const char *end = a + strcspn(a, "/?#"), *at = memchr(a, '@', (size_t)(end - a));

	/* USER:P@SS@HOST: the client library would take "SS@HOST" for a host */
	if (at && memchr(at + 1, '@', (size_t)(end - at - 1)))
		return "more than one '@' before the host (write an '@' in the user name or "
		       "password as %40)";
	if (at || !password_colon(a))
		return NULL;
	/* USER:PA/SS@HOST: the library reads "PA" as the port, "/SS@HOST" on */
	if (strchr(end, '@'))
		return "a '/', '?' or '#' in the user name or password (write them as %2F, %3F, "
		       "%23)";
	return "expected a port after the host's ':' (a user name and password go before the "
	       "host: USER:PASSWORD@HOST)";
}

/* ---- the client library's view: escapes, and scrubbing its messages ---- */

/* 1 if p, after the '?' at query, is in a parameter's name (no '=' between
 * the '&' or '?' that starts the parameter and p). */
static int in_param_name(const char *query, const char *p)
{
	const char *start = p;

	while (start > query && *start != '&')
		start--;
	return memchr(start, '=', (size_t)(p - start)) == NULL;
}

const char *cluster_url_escape_why(const char *s)
{
	const char *query = strchr(s, '?');

	for (const char *p = s; (p = strchr(p, '%')); p++) {
		if (hex_value(p[1]) < 0 || hex_value(p[2]) < 0)
			return "a '%' not followed by two hex digits (%XX; write a '%' as %25)";
		if (p[1] == '0' && p[2] == '0')
			return "%00 (a NUL byte) cannot be in the URL";
		if (query && p > query && in_param_name(query, p))
			return "a percent-encoded parameter name (write the names after '?' as "
			       "they are)";
	}
	return NULL;
}

/* p (n bytes) with each %XX but %00 decoded, anything else as it is
 * (malloc'd). */
static char *lenient_decode(const char *p, size_t n)
{
	char *out = xmalloc(n + 1), *o = out;

	for (size_t i = 0; i < n; i++) {
		int hi = p[i] == '%' && i + 2 < n ? hex_value(p[i + 1]) : -1;
		int lo = hi >= 0 ? hex_value(p[i + 2]) : -1;

		if (lo >= 0 && hi * 16 + lo) {
			*o++ = (char)(hi * 16 + lo);
			i += 2;
		} else {
			*o++ = p[i];
		}
	}
	*o = '\0';
	return out;
}

/* msg (freed) with every secret in it replaced by MASK (malloc'd). */
static char *replace_all(char *msg, const char *secret)
{
	size_t n = strlen(secret);
	struct buf out;
	const char *p = msg, *hit;

	if (!n || !strstr(msg, secret))
		return msg;
	buf_init(&out);
	while ((hit = strstr(p, secret))) {
		buf_append(&out, p, (size_t)(hit - p));
		buf_puts(&out, MASK);
		p = hit + n;
	}
	buf_puts(&out, p);
	free(msg);
	return out.data;
}

/* msg (freed) without the password p (n bytes), as written and decoded. */
static char *scrub_one(char *msg, const char *p, size_t n)
{
	char *raw = xstrndup(p, n), *decoded = lenient_decode(p, n);

	msg = replace_all(replace_all(msg, raw), decoded);
	free(raw);
	free(decoded);
	return msg;
}

/* msg (freed) without the password of USER:PASSWORD@, a to at. */
static char *scrub_userinfo(char *msg, const char *a, const char *at)
{
	const char *colon = at ? memchr(a, ':', (size_t)(at - a)) : NULL;

	return colon ? scrub_one(msg, colon + 1, (size_t)(at - colon - 1)) : msg;
}

char *cluster_url_scrub(const char *msg, const char *url)
{
	const char *scheme = strstr(url, "://"), *a = scheme ? scheme + 3 : url;
	const char *first = memchr(a, '@', strcspn(a, "/")), *last = strrchr(a, '@');
	char *out = scrub_userinfo(xstrdup(msg), a, last); /* the longer first */

	if (first != last)
		out = scrub_userinfo(out, a, first);
	for (const char *q = a; *q; q++) {
		size_t key = password_key(q);

		if (key)
			out = scrub_one(out, q + key, strcspn(q + key, "&"));
	}
	return out;
}
