/*
 * libFuzzer target for cluster/cluster_url: `[cluster] redis` values. The
 * input is the value (made a C string).
 *
 * Invariants: a parsed URL has a non-empty host of allowed characters, a
 * port from 1 to 65535 and a database from 0 to 15, and a password if it
 * has a user; a refusal says why and keeps no password; the URL written
 * back from what was parsed (user and password all %XX) parses to the same.
 * Masked (cluster_url_mask, as a URL and as a bare value), a URL with a
 * password shows "****", and the mask of a mask is itself: nothing is
 * unmasked by masking again. The same input as a PostgreSQL URL: one
 * whose escapes are accepted has only %XX, none %00; a message that is
 * the parsed password (without '*') is scrubbed to "****", and
 * scrubbing any message by any URL ends.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cluster_url.h"
#include "fuzz_util.h"

#define AGAIN_MAX (3 * (CLUSTER_USER_MAX + CLUSTER_PASSWORD_MAX) + CLUSTER_HOST_MAX + 40)

/* s as %XX, each byte. */
static char *encode(char *o, const char *s)
{
	for (; *s; s++)
		o += sprintf(o, "%%%02X", (unsigned char)*s);
	return o;
}

static void round_trip(const struct cluster_url *u)
{
	char again[AGAIN_MAX], *o = again + sprintf(again, "redis://");
	struct cluster_url v;
	const char *why;

	if (u->password[0]) {
		o = encode(o, u->user);
		*o++ = ':';
		o = encode(o, u->password);
		*o++ = '@';
	}
	snprintf(o, (size_t)(again + sizeof(again) - o),
	         strchr(u->host, ':') ? "[%s]:%d/%d" : "%s:%d/%d", u->host, u->port, u->db);
	CHECK(cluster_url_parse(again, &v, &why) == 0);
	CHECK(strcmp(u->host, v.host) == 0 && u->port == v.port && u->db == v.db);
	CHECK(strcmp(u->user, v.user) == 0 && strcmp(u->password, v.password) == 0);
}

static void masks(const char *s, const struct cluster_url *u, int parsed)
{
	for (int bare = 0; bare < 2; bare++) {
		char *m = cluster_url_mask(s, bare), *again = cluster_url_mask(m, bare);

		if (parsed && u->password[0])
			CHECK(strstr(m, "****") != NULL);
		CHECK(strcmp(m, again) == 0);
		(void)cluster_url_userinfo_why(s);
		free(again);
		free(m);
	}
}

static void scrubs(const char *s, const struct cluster_url *u, int parsed)
{
	const char *why = cluster_url_escape_why(s);
	char *m = cluster_url_scrub(s, s);

	for (const char *p = s; !why && (p = strchr(p, '%')); p++)
		CHECK(isxdigit((unsigned char)p[1]) && isxdigit((unsigned char)p[2]) &&
		      (p[1] != '0' || p[2] != '0'));
	free(m);
	if (!parsed || !u->password[0] || strchr(u->password, '*'))
		return;
	m = cluster_url_scrub(u->password, s);
	CHECK(strcmp(m, "****") == 0);
	free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_cstr(data, size);
	struct cluster_url u;
	const char *why;
	int parsed;

	parsed = cluster_url_parse(s, &u, &why) == 0;
	masks(s, &u, parsed);
	scrubs(s, &u, parsed);
	if (!parsed) {
		CHECK(why != NULL && !u.password[0]);
	} else {
		CHECK(u.host[0] && u.port >= 1 && u.port <= 65535 && u.db >= 0 && u.db <= 15);
		CHECK(!u.user[0] || u.password[0]);
		round_trip(&u);
	}
	free(s);
	return 0;
}
