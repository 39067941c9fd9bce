/*
 * cluster_url: parses `[cluster] redis`. PURE. Contract in cluster_url.h.
 */
#include "cluster/cluster_url.h"

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

/* HOST[:PORT] of authority (n bytes). */
static const char *parse_authority(const char *a, size_t n, struct cluster_url *out)
{
	const char *colon = NULL;
	long port;

	if (memchr(a, '@', n))
		return "user names and passwords are not supported in the Redis URL";
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
	if (ascii_ncasecmp(s, PREFIX, strlen(PREFIX)) != 0) {
		*why = "expected a URL redis://HOST[:PORT][/DB]";
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
	return *why ? -1 : 0;
}
