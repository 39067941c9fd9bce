/*
 * cluster_url: `[cluster] redis` URLs. PURE (libc + util), fuzzed
 * (fuzz/fuzz_cluster_url.c).
 *
 *   redis://HOST[:PORT][/DB]
 *
 * HOST is a name, an IPv4 address or a bracketed IPv6 address; PORT
 * 1-65535 (default 6379); DB 0-15 (default 0). No user, password or query:
 * Posthorn's Redis is reached over loopback or a private network (TLS,
 * rediss://, is not supported by the client library Posthorn builds with).
 */
#ifndef POSTHORN_CLUSTER_URL_H
#define POSTHORN_CLUSTER_URL_H

#include <stddef.h>

#define CLUSTER_HOST_MAX 253

struct cluster_url {
	char host[CLUSTER_HOST_MAX + 1]; /* without the brackets */
	int port;
	int db;
};

/* 0 parsed; -1 with the problem in *why (a static string). */
int cluster_url_parse(const char *s, struct cluster_url *out, const char **why);

#endif
