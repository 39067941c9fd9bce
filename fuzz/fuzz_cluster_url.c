/*
 * libFuzzer target for cluster/cluster_url: `[cluster] redis` values. The
 * input is the value (made a C string).
 *
 * Invariants: a parsed URL has a non-empty host of allowed characters, a
 * port from 1 to 65535 and a database from 0 to 15; a refusal says why;
 * the URL written back from what was parsed parses to the same.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cluster_url.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_cstr(data, size), again[CLUSTER_HOST_MAX + 32];
	struct cluster_url u, v;
	const char *why;

	if (cluster_url_parse(s, &u, &why) < 0) {
		CHECK(why != NULL);
	} else {
		CHECK(u.host[0] && u.port >= 1 && u.port <= 65535 && u.db >= 0 && u.db <= 15);
		snprintf(again, sizeof(again),
		         strchr(u.host, ':') ? "redis://[%s]:%d/%d" : "redis://%s:%d/%d", u.host,
		         u.port, u.db);
		CHECK(cluster_url_parse(again, &v, &why) == 0);
		CHECK(strcmp(u.host, v.host) == 0 && u.port == v.port && u.db == v.db);
	}
	free(s);
	return 0;
}
